"""The open-data catalog: public datasets' metadata as DCAT-AP 3, for a city's portal (CKAN,
data.europa.eu) to harvest. Only `public` datasets appear; what is said of each is metadata a
public dataset already shows every department (title, description, tags, owner, schema-derived
coverage from its latest profile), never a value of a non-public dataset.

One list of RDF statements, written out as JSON-LD (compacted with prefixes) or as Turtle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from functions.catalog.models import Dataset
from functions.catalog.profiles import DatasetProfile

PREFIXES = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "locn": "http://www.w3.org/ns/locn#",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
}
THEMES = "http://publications.europa.eu/resource/authority/data-theme/"
FILE_TYPES = "http://publications.europa.eu/resource/authority/file-type/"
GEOSPARQL_WKT = "http://www.opengis.net/ont/geosparql#wktLiteral"
_LATITUDE = re.compile(r"^(lat|latitude)$")
_LONGITUDE = re.compile(r"^(lon|lng|longitude)$")


@dataclass(frozen=True)
class Iri:
    value: str


@dataclass(frozen=True)
class Text:
    value: str
    datatype: str | None = None  # a full IRI; None: a plain (English) string
    language: str | None = "en"


Term = Iri | Text
Statement = tuple[str, str, Term]  # subject IRI, predicate (prefixed), object


@dataclass(frozen=True)
class CatalogEntry:
    """A public dataset with what the catalog says of it."""

    dataset: Dataset
    publisher_name: str
    profile: DatasetProfile | None = None


def _expand(term: str) -> str:
    prefix, _, local = term.partition(":")
    return PREFIXES[prefix] + local if prefix in PREFIXES and not term.startswith("http") else term


def statements(base_url: str, city: str, entries: Iterable[CatalogEntry]) -> list[Statement]:
    """The catalog as RDF statements. `base_url` is CityShare's API (identifiers and access URLs)."""
    catalog = f"{base_url}/catalog/dcat"
    service = f"{base_url}/delta-sharing#service"
    out: list[Statement] = [
        (catalog, "rdf:type", Iri(_expand("dcat:Catalog"))),
        (catalog, "dct:title", Text(f"{city} shared data")),
        (catalog, "dct:description", Text(f"Public datasets that {city}'s departments publish through CityShare.")),
        (catalog, "dct:publisher", Iri(f"{base_url}/departments/platform")),
        (catalog, "foaf:homepage", Iri(catalog)),
        (catalog, "dcat:service", Iri(service)),
        (f"{base_url}/departments/platform", "rdf:type", Iri(_expand("foaf:Agent"))),
        (f"{base_url}/departments/platform", "foaf:name", Text(f"{city} data platform team")),
        (service, "rdf:type", Iri(_expand("dcat:DataService"))),
        (service, "dct:title", Text("CityShare Delta Sharing endpoint")),
        (service, "dcat:endpointURL", Iri(f"{base_url}/delta-sharing")),
        (service, "dct:conformsTo", Iri("https://github.com/delta-io/delta-sharing/blob/main/PROTOCOL.md")),
    ]
    for entry in sorted(entries, key=lambda e: e.dataset.dataset_id):
        out += _dataset_statements(base_url, catalog, service, entry)
    return out


def _dataset_statements(base_url: str, catalog: str, service: str, entry: CatalogEntry) -> list[Statement]:
    dataset = entry.dataset
    subject = f"{base_url}/datasets/{quote(dataset.dataset_id)}"
    publisher = f"{base_url}/departments/{quote(dataset.owner)}"
    distribution = f"{subject}#parquet"
    out: list[Statement] = [
        (catalog, "dcat:dataset", Iri(subject)),
        (subject, "rdf:type", Iri(_expand("dcat:Dataset"))),
        (subject, "dct:identifier", Text(dataset.dataset_id, language=None)),
        (subject, "dct:title", Text(dataset.title)),
        (subject, "dct:description", Text(dataset.description or dataset.title)),
        (subject, "dct:publisher", Iri(publisher)),
        (subject, "dct:issued", Text(dataset.created_at, _expand("xsd:dateTime"), None)),
        (subject, "dct:modified", Text(dataset.updated_at, _expand("xsd:dateTime"), None)),
        (subject, "dcat:distribution", Iri(distribution)),
        (publisher, "rdf:type", Iri(_expand("foaf:Agent"))),
        (publisher, "foaf:name", Text(entry.publisher_name)),
        (distribution, "rdf:type", Iri(_expand("dcat:Distribution"))),
        (distribution, "dct:title", Text(f"{dataset.title} (Parquet, latest version)")),
        (distribution, "dcat:accessURL", Iri(f"{base_url}/datasets/{quote(dataset.dataset_id)}/data")),
        (distribution, "dct:format", Iri(f"{FILE_TYPES}PARQUET")),
        (distribution, "dcat:mediaType", Iri("https://www.iana.org/assignments/media-types/application/vnd.apache.parquet")),
        (distribution, "dcat:accessService", Iri(service)),
    ]
    out += [(subject, "dcat:keyword", Text(tag)) for tag in dataset.tags]
    out += [(subject, "dcat:theme", Iri(f"{THEMES}{theme}")) for theme in dataset.themes]
    if dataset.licence:
        out.append((distribution, "dct:license", Iri(dataset.licence)))
    if dataset.contact_point:
        contact = f"{subject}#contact"
        out += [
            (subject, "dcat:contactPoint", Iri(contact)),
            (contact, "rdf:type", Iri(_expand("vcard:Kind"))),
            (contact, "vcard:fn", Text(dataset.contact_point.name)),
            (contact, "vcard:hasEmail", Iri(f"mailto:{dataset.contact_point.email}")),
        ]
    out += _coverage(subject, dataset, entry.profile)
    return out


def _coverage(subject: str, dataset: Dataset, profile: DatasetProfile | None) -> list[Statement]:
    """Temporal and spatial coverage, where the schema says which columns tell (date-times; latitude
    and longitude) and the latest version's profile has their bounds. Never from a personal column,
    even generalised: the catalog goes to the whole internet, and a column's extremes are its outliers
    (the oldest birth date, the farthest home), the values that single people out."""
    if profile is None:
        return []
    personal = dataset.table_schema.personal_columns()
    columns = {name: column for name, column in profile.columns.items() if name not in personal}
    out: list[Statement] = []
    times = [n for n, c in dataset.table_schema.properties.items() if c.format in ("date-time", "date") and n in columns]
    starts = [str(columns[n].min) for n in times if columns[n].min is not None]
    ends = [str(columns[n].max) for n in times if columns[n].max is not None]
    if starts and ends:
        period = f"{subject}#period"
        out += [
            (subject, "dct:temporal", Iri(period)),
            (period, "rdf:type", Iri(_expand("dct:PeriodOfTime"))),
            (period, "dcat:startDate", _moment(min(starts))),
            (period, "dcat:endDate", _moment(max(ends))),
        ]
    latitude = next((n for n in dataset.table_schema.properties if _LATITUDE.match(n) and n in columns), None)
    longitude = next((n for n in dataset.table_schema.properties if _LONGITUDE.match(n) and n in columns), None)
    # Geometry columns' boxes first (the shapes' extent); else latitude and longitude's bounds.
    # Not of a dataset about people: a box's corners are its outermost shapes, which may be someone's.
    shapes = {} if dataset.table_schema.is_personal() else dataset.table_schema.geometry_columns()
    boxes = [box for n in shapes if n in columns and (box := columns[n].bbox)]
    bounds: list[Any] = []
    if boxes:
        bounds = [min(b[1] for b in boxes), max(b[3] for b in boxes), min(b[0] for b in boxes), max(b[2] for b in boxes)]
    elif latitude and longitude:
        bounds = [columns[latitude].min, columns[latitude].max, columns[longitude].min, columns[longitude].max]
    if bounds and all(isinstance(b, int | float) for b in bounds):
        south, north, west, east = (float(b) for b in bounds)
        polygon = f"POLYGON(({west} {south}, {east} {south}, {east} {north}, {west} {north}, {west} {south}))"
        place = f"{subject}#area"
        out += [
            (subject, "dct:spatial", Iri(place)),
            (place, "rdf:type", Iri(_expand("dct:Location"))),
            (place, "dcat:bbox", Text(polygon, GEOSPARQL_WKT, None)),
        ]
    return out


def _moment(value: str) -> Text:
    """A date or date-time literal (profiles keep dates as YYYY-MM-DD, date-times in ISO 8601)."""
    if len(value) == 10:
        return Text(value, _expand("xsd:date"), None)
    return Text(value.replace(" ", "T"), _expand("xsd:dateTime"), None)


# -- writing out
def _object_json(term: Term) -> dict[str, Any]:
    if isinstance(term, Iri):
        return {"@id": term.value}
    if term.datatype:
        return {"@value": term.value, "@type": term.datatype}
    return {"@value": term.value, "@language": term.language} if term.language else {"@value": term.value}


def to_json_ld(triples: list[Statement]) -> str:
    nodes: dict[str, dict[str, Any]] = {}
    for subject, predicate, term in triples:
        node = nodes.setdefault(subject, {"@id": subject})
        if predicate == "rdf:type":
            node.setdefault("@type", []).append(term.value)
        else:
            node.setdefault(predicate, []).append(_object_json(term))
    return json.dumps({"@context": PREFIXES, "@graph": list(nodes.values())}, indent=1, ensure_ascii=False)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def _iri(value: str) -> str:
    # Characters Turtle does not allow inside <...> are percent-encoded (identifiers are URL-safe already).
    return "<" + re.sub(r'[\x00-\x20<>"{}|^`\\]', lambda m: f"%{ord(m.group()):02X}", value) + ">"


def _object_turtle(term: Term) -> str:
    if isinstance(term, Iri):
        return _iri(term.value)
    literal = f'"{_escape(term.value)}"'
    if term.datatype:
        return f"{literal}^^{_iri(term.datatype)}"
    return f"{literal}@{term.language}" if term.language else literal


def to_turtle(triples: list[Statement]) -> str:
    lines = [f"@prefix {prefix}: <{iri}> ." for prefix, iri in PREFIXES.items()] + [""]
    for subject, predicate, term in triples:
        verb = "a" if predicate == "rdf:type" else predicate
        lines.append(f"{_iri(subject)} {verb} {_object_turtle(term)} .")
    return "\n".join(lines) + "\n"
