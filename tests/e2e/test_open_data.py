"""The open-data catalog over HTTP: public, unsigned, public datasets only, JSON-LD or Turtle,
cacheable (ETag, 304), and nothing but GET."""

from __future__ import annotations

import requests
from rdflib import Graph, URIRef
from rdflib.namespace import DCAT, DCTERMS, RDF

from tests.conftest import RunningStack, onboard, unique
from tests.datasets import city_schema


def test_the_catalog_lists_public_datasets_only_without_a_signature(stack: RunningStack) -> None:
    owner = onboard(stack, unique("transport"), "traffic-control", ["member"])
    public, internal, confidential = unique("counts"), unique("plans"), unique("cameras")
    owner.client.create_dataset(
        public,
        "Traffic counts",
        "public",
        city_schema("traffic-flow"),
        description="Vehicles per segment every 15 minutes",
        tags=["mobility"],
        licence="https://creativecommons.org/licenses/by/4.0/",
        contact_point={"name": "Traffic data desk", "email": "traffic-data@city.example"},
        themes=["TRAN"],
    )
    owner.client.create_dataset(internal, "Plans", "internal", city_schema("traffic-flow"))
    owner.client.create_dataset(confidential, "Cameras", "confidential", city_schema("traffic-flow"))
    url = owner.client.endpoint + "/catalog/dcat"
    answer = requests.get(url, timeout=30)  # no Authorization header at all
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/ld+json")
    assert answer.headers["Cache-Control"].startswith("public")
    graph = Graph().parse(data=answer.text, format="json-ld")
    datasets = {str(s) for s in graph.subjects(RDF.type, DCAT.Dataset)}
    assert f"{owner.client.endpoint}/datasets/{public}" in datasets
    assert not any(internal in d or confidential in d for d in datasets)
    assert internal not in answer.text and confidential not in answer.text
    subject = URIRef(f"{owner.client.endpoint}/datasets/{public}")
    assert str(graph.value(subject, DCTERMS.title)) == "Traffic counts"

    turtle = requests.get(url, headers={"Accept": "text/turtle"}, timeout=30)
    assert turtle.headers["Content-Type"].startswith("text/turtle")
    assert len(Graph().parse(data=turtle.text, format="turtle")) == len(graph)
    assert owner.client.open_data_catalog(turtle=True) == turtle.text
    again = requests.get(url, headers={"If-None-Match": answer.headers["ETag"]}, timeout=30)
    assert again.status_code == 304 and not again.content
    refused = requests.post(url, json={}, timeout=30)
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"
