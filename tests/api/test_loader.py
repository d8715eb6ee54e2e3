"""The loader reports every broken document of a file, in order, even next to malformed YAML."""

from __future__ import annotations

import pytest

from flotilla.api.errors import ManifestErrors
from flotilla.api.loader import load_text, parse_documents
from flotilla.api.registry import Registry

TEXT = """\
apiVersion: kueue.x-k8s.io/v1beta2
kind: LocalQueue
metadata: {name: lq, namespace: default}
spec: {clusterQueu: cq}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ResourceFlavor
metadata: {name: fine}
---
a: [1, 2
---
apiVersion: v1
kind: Jobb
metadata: {name: x}
"""


def test_malformed_document_does_not_hide_the_others(registry: Registry) -> None:
    with pytest.raises(ManifestErrors) as err:
        load_text(TEXT, registry, source="mixed.yaml")
    issues = err.value.issues
    assert [i.split(":")[0] for i in issues] == [
        "mixed.yaml doc 1 LocalQueue/lq",
        "mixed.yaml doc 3",
        "mixed.yaml doc 4 Jobb/x",
    ]
    assert 'spec.clusterQueu: unknown field "clusterQueu"; did you mean "clusterQueue"?' in issues[0]
    assert "malformed YAML at line 11" in issues[1]


def test_parse_documents_raises_with_the_line_of_each_broken_document() -> None:
    text = "a: 1\n---\nb: [\n---\nc: 2\n---\nd: {\n"
    with pytest.raises(ManifestErrors) as err:
        parse_documents(text, "f.yaml")
    assert [(e.doc_index, str(e).split(",")[0]) for e in err.value.errors] == [
        (2, "f.yaml doc 2: malformed YAML at line 4"),
        (4, "f.yaml doc 4: malformed YAML at line 8"),
    ]


def test_leading_separator_and_empty_documents() -> None:
    assert parse_documents("---\na: 1\n---\n---\nb: 2\n", "f.yaml") == [(1, {"a": 1}), (3, {"b": 2})]
