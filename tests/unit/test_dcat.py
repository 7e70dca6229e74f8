"""The open-data catalog as DCAT-AP 3: parsed with rdflib from JSON-LD and from Turtle (the same
graph), each mandatory class and property checked with SPARQL, coverage from the profile."""

from __future__ import annotations

from typing import Any

import pytest
from rdflib import Graph
from rdflib.compare import isomorphic

from functions.catalog.dcat import CatalogEntry, statements, to_json_ld, to_turtle
from functions.catalog.models import Dataset
from functions.catalog.profiles import ColumnProfile, DatasetProfile
from tests.datasets import city_schema

BASE = "https://api.city.example/prod"
PREFIXES = """
PREFIX dcat: <http://www.w3.org/ns/dcat#>
PREFIX dct: <http://purl.org/dc/terms/>
PREFIX foaf: <http://xmlns.com/foaf/0.1/>
PREFIX vcard: <http://www.w3.org/2006/vcard/ns#>
"""


def dataset(dataset_id: str, **extra: Any) -> Dataset:
    values: dict[str, Any] = {
        "dataset_id": dataset_id,
        "title": f"Title of {dataset_id}",
        "description": 'Measured every 15 minutes; "quoted" and\nmultiline',
        "tags": ["mobility", "sensors"],
        "classification": "public",
        "schema": city_schema("traffic-flow"),
        "owner": "transport",
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-02-01T00:00:00+00:00",
        "created_by": "traffic-control",
        "latest_version": 3,
    }
    return Dataset.model_validate(values | extra)


@pytest.fixture(scope="module")
def graphs() -> tuple[Graph, Graph]:
    profile = DatasetProfile(
        rows=10,
        columns={
            "measured_at": ColumnProfile(
                nulls=0, min="2026-03-01T00:00:00+00:00", max="2026-03-31T23:45:00+00:00", distinct_estimate=10
            ),
        },
    )
    entries = [
        CatalogEntry(
            dataset(
                "traffic-flow",
                licence="https://creativecommons.org/licenses/by/4.0/",
                contact_point={"name": "Traffic data desk", "email": "traffic-data@city.example"},
                themes=["TRAN"],
            ),
            "Transport",
            profile,
        ),
        CatalogEntry(dataset("road-works", tags=[]), "Transport"),
    ]
    triples = statements(BASE, "Example City", entries)
    return Graph().parse(data=to_json_ld(triples), format="json-ld"), Graph().parse(data=to_turtle(triples), format="turtle")


def ask(graph: Graph, query: str) -> bool:
    return bool(graph.query(PREFIXES + query).askAnswer)


def test_json_ld_and_turtle_are_the_same_graph(graphs: tuple[Graph, Graph]) -> None:
    json_ld, turtle = graphs
    assert len(json_ld) > 40 and isomorphic(json_ld, turtle)


def test_the_catalog_has_every_mandatory_property(graphs: tuple[Graph, Graph]) -> None:
    graph = graphs[0]
    assert ask(graph, "ASK { ?c a dcat:Catalog ; dct:title ?t ; dct:description ?d ; dct:publisher ?p . ?p foaf:name ?n }")
    datasets = graph.query(PREFIXES + "SELECT ?d WHERE { ?c a dcat:Catalog ; dcat:dataset ?d }")
    assert {str(row[0]) for row in datasets} == {f"{BASE}/datasets/traffic-flow", f"{BASE}/datasets/road-works"}


def test_every_dataset_distribution_and_service_has_its_mandatory_properties(graphs: tuple[Graph, Graph]) -> None:
    graph = graphs[0]
    # DCAT-AP 3 mandatory: Dataset title and description; Distribution accessURL; Agent name; DataService endpointURL and title.
    assert not ask(graph, "ASK { ?d a dcat:Dataset . FILTER NOT EXISTS { ?d dct:title ?t ; dct:description ?x } }")
    assert not ask(graph, "ASK { ?x a dcat:Distribution . FILTER NOT EXISTS { ?x dcat:accessURL ?u } }")
    assert not ask(graph, "ASK { ?a a foaf:Agent . FILTER NOT EXISTS { ?a foaf:name ?n } }")
    assert not ask(graph, "ASK { ?s a dcat:DataService . FILTER NOT EXISTS { ?s dcat:endpointURL ?e ; dct:title ?t } }")
    assert not ask(graph, "ASK { ?d a dcat:Dataset . FILTER NOT EXISTS { ?d dct:publisher ?p . ?p foaf:name ?n } }")
    assert ask(graph, f"ASK {{ ?x dcat:accessService ?s . ?s dcat:endpointURL <{BASE}/delta-sharing> }}")


def test_recommended_properties_come_from_the_datasets_metadata_and_profile(graphs: tuple[Graph, Graph]) -> None:
    graph = graphs[0]
    flow = f"<{BASE}/datasets/traffic-flow>"
    transport = "<http://publications.europa.eu/resource/authority/data-theme/TRAN>"
    assert ask(graph, f'ASK {{ {flow} dcat:keyword "mobility"@en ; dcat:theme {transport} }}')
    assert ask(
        graph,
        f"ASK {{ {flow} dcat:distribution ?x . ?x dct:license <https://creativecommons.org/licenses/by/4.0/> ; dct:format ?f }}",
    )
    assert ask(
        graph, f"ASK {{ {flow} dcat:contactPoint ?c . ?c a vcard:Kind ; vcard:hasEmail <mailto:traffic-data@city.example> }}"
    )
    period = graph.query(PREFIXES + f"SELECT ?s ?e WHERE {{ {flow} dct:temporal ?p . ?p dcat:startDate ?s ; dcat:endDate ?e }}")
    (start, end), *_ = list(period)
    assert str(start).startswith("2026-03-01") and str(end).startswith("2026-03-31")
    assert not ask(graph, f"ASK {{ <{BASE}/datasets/road-works> dct:temporal ?p }}")  # no profile: no coverage claimed
    titles = [str(r[0]) for r in graph.query(PREFIXES + f"SELECT ?d WHERE {{ {flow} dct:description ?d }}")]
    assert titles == ['Measured every 15 minutes; "quoted" and\nmultiline']  # escaped in Turtle, intact after parsing


def test_metadata_fields_are_validated() -> None:
    with pytest.raises(ValueError):
        dataset("x-bad", licence="javascript:alert(1)")
    with pytest.raises(ValueError):
        dataset("x-bad", contact_point={"name": "a", "email": "not an address"})
    with pytest.raises(ValueError):
        dataset("x-bad", themes=["SPACE"])


@pytest.mark.parametrize(
    ("accept", "served"),
    [
        ("", "application/ld+json"),
        ("text/turtle", "text/turtle"),
        ("text/turtle;q=0", "application/ld+json"),  # q=0: not acceptable
        ("text/turtle;q=0, application/ld+json", "application/ld+json"),
        ("application/ld+json;q=0.5, text/turtle;q=0.9", "text/turtle"),
        ("text/turtle, application/ld+json", "application/ld+json"),  # equal: JSON-LD
        ("TEXT/TURTLE; Q=1", "text/turtle"),
        ("text/turtle;q=abc", "application/ld+json"),
        ("text/turtle;q=nan", "application/ld+json"),
        ("text/html, */*;q=0.8", "application/ld+json"),
    ],
)
def test_the_catalog_format_follows_the_accept_headers_weights(accept: str, served: str) -> None:
    from functions.handlers.open_data import preferred

    assert preferred(accept) == served


def test_coverage_never_comes_from_a_personal_column() -> None:
    """The catalog is public: a personal column's extremes (even generalised) are never published."""

    def coverage(personal: dict[str, Any] | None) -> tuple[bool, bool]:
        schema = city_schema("traffic-flow")
        schema["properties"] = dict(
            schema["properties"],
            lat={"type": "number", "minimum": -90, "maximum": 90},
            lon={"type": "number", "minimum": -180, "maximum": 180},
        )
        for name in ("measured_at", "lat", "lon"):
            if personal is not None:
                schema["properties"][name] = dict(schema["properties"][name], **{"x-personal": personal[name]})
        profile = DatasetProfile(
            rows=10,
            columns={
                "measured_at": ColumnProfile(
                    nulls=0, min="1931-02-03T00:00:00+00:00", max="2026-03-31T00:00:00+00:00", distinct_estimate=9
                ),
                "lat": ColumnProfile(nulls=0, min=52.01, max=52.47, distinct_estimate=9),
                "lon": ColumnProfile(nulls=0, min=4.71, max=5.02, distinct_estimate=9),
            },
        )
        graph = Graph().parse(
            data=to_json_ld(statements(BASE, "Example City", [CatalogEntry(dataset("homes", schema=schema), "Health", profile)])),
            format="json-ld",
        )
        subject = f"<{BASE}/datasets/homes>"
        return ask(graph, f"ASK {{ {subject} dct:temporal ?p }}"), ask(graph, f"ASK {{ {subject} dct:spatial ?p }}")

    assert coverage(None) == (True, True)
    generalised = {
        "measured_at": {"protection": "generalise", "granularity": "1h"},
        "lat": {"protection": "generalise", "granularity": "0.01"},
        "lon": {"protection": "generalise", "granularity": "0.01"},
    }
    assert coverage(generalised) == (False, False)


def test_a_geometry_columns_box_is_the_datasets_spatial_coverage() -> None:
    """The districts' outlines (x-geometry): their profiled box is the catalog's dcat:bbox."""
    profile = DatasetProfile(
        rows=8,
        columns={"geometry": ColumnProfile(nulls=0, distinct_estimate=8, bbox=[-2.65, 51.40, -2.51, 51.50])},
    )
    entry = CatalogEntry(
        dataset("district-boundaries", schema=city_schema("district-boundaries"), owner="city-management"), "City", profile
    )
    graph = Graph().parse(data=to_json_ld(statements(BASE, "Example City", [entry])), format="json-ld")
    found = graph.query(
        PREFIXES + f"SELECT ?box WHERE {{ <{BASE}/datasets/district-boundaries> dct:spatial ?p . ?p dcat:bbox ?box }}"
    )
    (box,) = [str(row[0]) for row in found]  # type: ignore[index]
    assert box == "POLYGON((-2.65 51.4, -2.51 51.4, -2.51 51.5, -2.65 51.5, -2.65 51.4))"
