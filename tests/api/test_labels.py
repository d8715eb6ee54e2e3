"""Label selectors: the string form (`kubectl get -l`) and the object form, as Kubernetes parses them."""

from __future__ import annotations

import pytest

from flotilla.api.base import LabelSelector
from flotilla.api.labels import Requirement, Selector, SelectorError, parse_selector, selector_from_object

PARSE_CASES: list[tuple[str, tuple[Requirement, ...]]] = [
    ("a=b", (Requirement("a", "In", ("b",)),)),
    ("a==b", (Requirement("a", "In", ("b",)),)),
    ("a!=b", (Requirement("a", "NotIn", ("b",)),)),
    ("a in (x,y)", (Requirement("a", "In", ("x", "y")),)),
    ("a notin (x, y)", (Requirement("a", "NotIn", ("x", "y")),)),
    ("a in(x)", (Requirement("a", "In", ("x",)),)),
    ("a", (Requirement("a", "Exists"),)),
    ("!a", (Requirement("a", "DoesNotExist"),)),
    ("! a", (Requirement("a", "DoesNotExist"),)),
    ("a=", (Requirement("a", "In", ("",)),)),
    (" a = b , c ", (Requirement("a", "In", ("b",)), Requirement("c", "Exists"))),
    ("kueue.x-k8s.io/queue-name=team-a", (Requirement("kueue.x-k8s.io/queue-name", "In", ("team-a",)),)),
    ("app.kubernetes.io/name in (vllm,whisper)", (Requirement("app.kubernetes.io/name", "In", ("vllm", "whisper")),)),
    (
        "a=b,c!=d,e in (x,y),f notin (z),!g,h",
        (
            Requirement("a", "In", ("b",)),
            Requirement("c", "NotIn", ("d",)),
            Requirement("e", "In", ("x", "y")),
            Requirement("f", "NotIn", ("z",)),
            Requirement("g", "DoesNotExist"),
            Requirement("h", "Exists"),
        ),
    ),
]


@pytest.mark.parametrize(("text", "requirements"), PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_parse(text: str, requirements: tuple[Requirement, ...]) -> None:
    assert parse_selector(text).requirements == requirements


@pytest.mark.parametrize("text", [None, "", "   "])
def test_empty_selector_matches_everything(text: str | None) -> None:
    selector = parse_selector(text)
    assert selector == Selector()
    assert selector.matches({}) and selector.matches({"a": "b"}) and selector.matches(None)


GPU = {"gpu": "a100", "team": "ml"}
CPU = {"team": "web"}
NONE: dict[str, str] = {}

# (selector, labels, matches)
MATCH_CASES: list[tuple[str, dict[str, str], bool]] = [
    ("gpu=a100", GPU, True),
    ("gpu=a100", CPU, False),
    ("gpu==a100", GPU, True),
    ("gpu=h100", GPU, False),
    ("gpu!=h100", GPU, True),
    ("gpu!=a100", GPU, False),
    ("gpu!=a100", CPU, True),  # != matches objects that lack the key
    ("gpu in (a100,h100)", GPU, True),
    ("gpu in (h100,h200)", GPU, False),
    ("gpu in (a100)", CPU, False),  # in needs the key
    ("gpu notin (h100)", GPU, True),
    ("gpu notin (a100,h100)", GPU, False),
    ("gpu notin (a100)", CPU, True),  # notin matches objects that lack the key
    ("gpu", GPU, True),
    ("gpu", CPU, False),
    ("!gpu", GPU, False),
    ("!gpu", CPU, True),
    ("!gpu", NONE, True),
    ("team", NONE, False),
    ("gpu=a100,team=ml", GPU, True),  # every requirement must hold
    ("gpu=a100,team=web", GPU, False),
    ("team in (ml,web),!gpu", CPU, True),
    ("team in (ml,web),!gpu", GPU, False),
    ("team=", {"team": ""}, True),
    ("team=", CPU, False),
]


@pytest.mark.parametrize(("text", "labels", "expected"), MATCH_CASES, ids=[f"{c[0]}|{c[1]}" for c in MATCH_CASES])
def test_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(text).matches(labels) is expected


ERROR_CASES: list[tuple[str, str]] = [
    ("a,,b", "empty requirement"),
    ("a=b,", "empty requirement"),
    (",a", "empty requirement"),
    ("a in (x,y", "unbalanced '('"),
    ("a in x,y)", "unbalanced ')'"),
    ("a in ()", "'in' needs at least one value"),
    ("a notin ( )", "'notin' needs at least one value"),
    ("=b", "invalid label key ''"),
    ("!", "invalid label key ''"),
    ("-a=b", "invalid label key '-a'"),
    ("a-=b", "invalid label key 'a-'"),
    ("a b=c", "invalid label key 'a b'"),
    ("!a=b", "invalid label key '!a'"),
    ("a>1", "invalid label key 'a>1'"),  # Gt/Lt are not part of the supported string form
    ("a/b/c=x", "invalid label key 'a/b/c'"),
    ("Example.com/app=x", "invalid label key 'Example.com/app'"),  # prefixes are lower-case DNS names
    ("/app=x", "invalid label key '/app'"),
    ("k" * 64 + "=x", "invalid label key"),
    ("a=b=c", "invalid label value 'b=c'"),
    ("a=-b", "invalid label value '-b'"),
    ("a=b c", "invalid label value 'b c'"),
    ("a in (x,-y)", "invalid label value '-y'"),
    ("a=" + "v" * 64, "invalid label value"),
]


@pytest.mark.parametrize(("text", "message"), ERROR_CASES, ids=[c[0][:30] for c in ERROR_CASES])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_selector(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)  # the error quotes the whole selector


def test_longest_valid_key_and_value() -> None:
    key = "example.com/" + "k" * 63
    assert parse_selector(f"{key}={'v' * 63}").matches({key: "v" * 63})


@pytest.mark.parametrize(
    "text", ["a=b", "a!=b", "a in (x,y)", "a notin (x,y)", "a", "!a", "a=b,c!=d,e in (x,y),!f,g", "a="]
)
def test_string_form_round_trips(text: str) -> None:
    selector = parse_selector(text)
    assert parse_selector(str(selector)) == selector
    assert str(selector) == text


def test_object_form() -> None:
    selector = selector_from_object(
        {"team": "ml", "app": "vllm"}, [("gpu", "In", ["a100", "h100"]), ("spot", "DoesNotExist", [])]
    )
    assert selector.requirements == (
        Requirement("app", "In", ("vllm",)),  # matchLabels come first, sorted by key
        Requirement("team", "In", ("ml",)),
        Requirement("gpu", "In", ("a100", "h100")),
        Requirement("spot", "DoesNotExist"),
    )
    assert selector.matches({"team": "ml", "app": "vllm", "gpu": "h100"})
    assert not selector.matches({"team": "ml", "app": "vllm", "gpu": "h100", "spot": "true"})


def test_object_form_rejects_unknown_operators() -> None:
    with pytest.raises(SelectorError, match="unknown operator 'Gt'; use In, NotIn, Exists or DoesNotExist"):
        selector_from_object(None, [("a", "Gt", ["1"])])


def test_label_selector_model_converts() -> None:
    model = LabelSelector.model_validate(
        {"matchLabels": {"team": "ml"}, "matchExpressions": [{"key": "gpu", "operator": "Exists"}]}
    )
    selector = model.to_selector()
    assert selector.matches({"team": "ml", "gpu": "a100"})
    assert not selector.matches({"team": "ml"})
    assert LabelSelector().to_selector().matches({"anything": "x"})  # `{}` selects everything
