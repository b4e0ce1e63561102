"""CAP 1.2 (OASIS Common Alerting Protocol) documents and the Atom feed that serves them.

Every alert is also a CAP document: built with lxml when the alert is written, stored with it
(``Alert.cap_xml``) and served unchanged, so what the feed shows is what was decided at the time.
The area of each facility is its name and address (areaDesc) and, where its coordinates are
known, a circle around them (``"lat,lon radius_km"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from lxml import etree

from watchfloor.clock import as_utc
from watchfloor.sites.models import Facility

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_MEDIA_TYPE = "application/cap+xml"
ATOM_MEDIA_TYPE = "application/atom+xml"
AREA_RADIUS_KM = 0.5


def cap_time(value: datetime) -> str:
    """CAP's dateTime form: seconds precision and a numeric offset ("-00:00" for UTC)."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S") + "-00:00"


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        el.text = text
    return el


def build_alert(
    *,
    identifier: str,
    sender: str,
    sent: datetime,
    status: str,
    msg_type: str,
    event: str,
    urgency: str,
    severity: str,
    certainty: str,
    headline: str,
    description: str,
    instruction: str,
    facilities: Sequence[Facility],
    sender_name: str = "Watchfloor",
    web: str = "",
    references: str = "",
    incident: str = "",
) -> bytes:
    """The CAP 1.2 <alert> document (UTF-8 XML bytes)."""
    root = etree.Element(f"{{{CAP_NS}}}alert", nsmap={None: CAP_NS})
    _sub(root, "identifier", identifier)
    _sub(root, "sender", sender)
    _sub(root, "sent", cap_time(sent))
    _sub(root, "status", status)
    _sub(root, "msgType", msg_type)
    _sub(root, "scope", "Restricted")
    _sub(root, "restriction", "Staff and responders of the named facilities")
    if status == "Exercise":
        _sub(root, "note", "Exercise: this is a drill.")
    elif status == "Test":
        _sub(root, "note", "Test: not a real alert, no action needed.")
    if references:
        _sub(root, "references", references)
    if incident:
        _sub(root, "incidents", incident)
    info = _sub(root, "info")
    _sub(info, "language", "en-US")
    _sub(info, "category", "Security")
    _sub(info, "event", event)
    _sub(info, "responseType", "Shelter" if event == "Lockdown" else "None")
    _sub(info, "urgency", urgency)
    _sub(info, "severity", severity)
    _sub(info, "certainty", certainty)
    _sub(info, "senderName", sender_name)
    _sub(info, "headline", headline[:160])
    _sub(info, "description", description)
    if instruction:
        _sub(info, "instruction", instruction)
    if web:
        _sub(info, "web", web)
    for facility in facilities:
        area = _sub(info, "area")
        where = ", ".join(p for p in (facility.address, facility.city, facility.state) if p)
        desc = f"{facility.name} ({facility.code})" + (f", {where}" if where else "")
        _sub(area, "areaDesc", desc)
        if facility.latitude is not None and facility.longitude is not None:
            _sub(
                area,
                "circle",
                f"{facility.latitude:.6f},{facility.longitude:.6f} {AREA_RADIUS_KM}",
            )
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def atom_feed(
    *,
    feed_id: str,
    title: str,
    self_url: str,
    updated: datetime,
    entries: Sequence[tuple[str, str, datetime, str, bytes]],
) -> bytes:
    """An Atom feed whose entries carry the CAP documents inline.

    entries: (entry id, title, updated, link to the CAP document, CAP XML bytes)."""
    feed = etree.Element(f"{{{ATOM_NS}}}feed", nsmap={None: ATOM_NS, "cap": CAP_NS})

    def sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
        el = etree.SubElement(parent, f"{{{ATOM_NS}}}{tag}")
        if text is not None:
            el.text = text
        return el

    sub(feed, "id", feed_id)
    sub(feed, "title", title)
    sub(feed, "updated", as_utc(updated).isoformat())
    link = sub(feed, "link")
    link.set("rel", "self")
    link.set("href", self_url)
    author = sub(feed, "author")
    sub(author, "name", "Watchfloor")
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    for entry_id, entry_title, entry_updated, href, cap_xml in entries:
        entry = sub(feed, "entry")
        sub(entry, "id", entry_id)
        sub(entry, "title", entry_title)
        sub(entry, "updated", as_utc(entry_updated).isoformat())
        elink = sub(entry, "link")
        elink.set("rel", "alternate")
        elink.set("type", CAP_MEDIA_TYPE)
        elink.set("href", href)
        content = sub(entry, "content")
        content.set("type", CAP_MEDIA_TYPE)
        content.append(etree.fromstring(cap_xml, parser))
    return bytes(etree.tostring(feed, xml_declaration=True, encoding="UTF-8"))
