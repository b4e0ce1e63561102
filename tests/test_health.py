async def test_health_reports_database(client):
    resp = await client.get("/api/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    assert body["database"] in {"sqlite", "postgresql"}


async def test_unknown_path_is_problem_document(client):
    resp = await client.get("/api/v1/no-such-thing")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["status"] == 404


async def test_oversize_body_refused_with_problem(client):
    resp = await client.post("/api/v1/anything", content=b"x" * 2_000_000)
    assert resp.status_code == 413
    assert resp.json()["type"].endswith("body-too-large")
