"""--data specs: synthetic sizes and sharing, files, transcripts, and the error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flotilla.loadgen.datasets import (
    SUMMARY_SYSTEM_PROMPT,
    DatasetError,
    TextMaker,
    load_dataset,
)


def test_synthetic_prompts_have_exactly_the_token_count() -> None:
    prompts = load_dataset("synthetic:prompt_tokens=50,output_tokens=20,samples=30")
    maker = TextMaker()
    assert len(prompts) == 30
    assert all(p.prompt_tokens == 50 == maker.count(p.text) for p in prompts)
    assert all(p.output_tokens == 20 for p in prompts)
    assert len({p.text for p in prompts}) == 30  # every sample its own text
    assert prompts == load_dataset("synthetic:prompt_tokens=50,output_tokens=20,samples=30")  # seeded
    assert prompts != load_dataset("synthetic:prompt_tokens=50,output_tokens=20,samples=30", seed=1)


def test_synthetic_sizes_vary_within_their_bounds() -> None:
    spec = (
        "synthetic:prompt_tokens=100,prompt_stdev=40,prompt_min=80,prompt_max=130,"
        "output_tokens=10,output_stdev=5,output_min=8,output_max=12,samples=200"
    )
    prompts = load_dataset(spec)
    sizes = [p.prompt_tokens for p in prompts]
    assert min(sizes) == 80 and max(sizes) == 130  # clamped at both ends with this spread
    assert len(set(sizes)) > 10
    assert all(8 <= p.output_tokens <= 12 for p in prompts)
    maker = TextMaker()
    assert all(maker.count(p.text) == p.prompt_tokens for p in prompts)


def test_prefix_groups_share_a_prefix_of_n_tokens() -> None:
    prompts = load_dataset("synthetic:prompt_tokens=20,output_tokens=4,prefix_tokens=30,prefix_groups=3,samples=9")
    maker = TextMaker()
    ids = [maker.tokenizer.encode(p.text) for p in prompts]
    assert all(len(t) == 50 for t in ids)  # prefix on top of prompt_tokens
    prefixes = [tuple(t[:30]) for t in ids]
    assert prefixes[0] == prefixes[3] == prefixes[6]
    assert prefixes[1] == prefixes[4] and prefixes[2] == prefixes[5]
    assert len(set(prefixes)) == 3
    assert len({tuple(t[30:]) for t in ids}) == 9  # the rest is each sample's own


def test_turns_make_sessions() -> None:
    prompts = load_dataset("synthetic:prompt_tokens=5,output_tokens=4,turns=3,samples=7")
    assert [p.session for p in prompts] == ["session-0"] * 3 + ["session-1"] * 3 + ["session-2"]
    assert all(p.session == "" for p in load_dataset("synthetic:prompt_tokens=5,output_tokens=4,samples=3"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "synthetic:promt_tokens=5",
            "--data synthetic:promt_tokens=5: unknown key promt_tokens; keys: prompt_tokens, output_tokens, "
            "prompt_stdev",
        ),
        ("synthetic:output_tokens=5", "prompt_tokens is required, e.g. synthetic:prompt_tokens=512"),
        ("synthetic:prompt_tokens=5", "output_tokens is required"),
        ("synthetic:prompt_tokens=abc,output_tokens=3", "prompt_tokens=abc is not a whole number"),
        ("synthetic:prompt_tokens=5,output_tokens=3,prompt_stdev=x", "prompt_stdev=x is not a number"),
        ("synthetic:prompt_tokens=5,output_tokens", "'output_tokens' is not key=value"),
        ("synthetic:prompt_tokens=0,output_tokens=3", "prompt_tokens must be >= 1"),
        ("synthetic:prompt_tokens=5,output_tokens=3,prompt_min=9,prompt_max=4", "prompt_max must be >= prompt_min"),
        ("sharegpt:foo", "unknown kind 'sharegpt'; use synthetic:"),
        ("prompt_tokens=5", "unknown kind"),
    ],
)
def test_bad_specs_say_what_and_how_to_fix(spec: str, message: str) -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset(spec)
    assert message in str(info.value)


def test_csv_rows(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text('prompt,output_tokens,session,extra\n"Hello, there",12,s1,x\nsecond prompt,,,y\n')
    a, b = load_dataset(f"file:{f}", output_tokens=64)
    assert (a.text, a.output_tokens, a.session, a.id) == ("Hello, there", 12, "s1", "row-2")
    assert (b.text, b.output_tokens, b.session) == ("second prompt", 64, "")
    assert a.prompt_tokens == TextMaker().count("Hello, there")


def test_jsonl_rows(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    rows = [{"prompt": "one", "prompt_tokens": 99, "output_tokens": 3}, {"prompt": "two", "session": "abc"}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    a, b = load_dataset(f"file:{f}")
    assert (a.text, a.prompt_tokens, a.output_tokens) == ("one", 99, 3)  # prompt_tokens as given (informative)
    assert (b.text, b.session, b.output_tokens) == ("two", "abc", 128)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.csv", "text,output_tokens\nhi,3\n", "has no column 'prompt' (columns: text, output_tokens)"),
        ("p.csv", "prompt,output_tokens\nhi,lots\n", "p.csv:2: output_tokens='lots' is not a whole number"),
        ("p.csv", "prompt\n\n", "no prompts in it"),
        ("p.jsonl", '{"prompt": "a"}\n{"text": "b"}\n', "p.jsonl:2: 'prompt' is missing or empty"),
        ("p.jsonl", '{"prompt": "a"}\nnot json\n', "p.jsonl:2: not JSON"),
        ("p.jsonl", "[1, 2]\n", "p.jsonl:1: expected a JSON object with a 'prompt' key"),
        ("p.txt", "hello\n", "use a .csv or .jsonl file"),
    ],
)
def test_bad_files_name_the_file_row_and_column(tmp_path: Path, name: str, content: str, message: str) -> None:
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(DatasetError) as info:
        load_dataset(f"file:{f}")
    assert message in str(info.value)


def test_a_missing_file_or_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=f"{tmp_path}/nope.csv is not a file"):
        load_dataset(f"file:{tmp_path}/nope.csv")
    with pytest.raises(DatasetError, match="is not a folder"):
        load_dataset(f"transcripts:{tmp_path}/nope")
    with pytest.raises(DatasetError, match=r"no \.txt transcripts in"):
        load_dataset(f"transcripts:{tmp_path}")


def test_transcripts_become_summarization_prompts(tmp_path: Path) -> None:
    (tmp_path / "standup.txt").write_text("We shipped the queue.\n")
    (tmp_path / "budget.txt").write_text("The budget is fine.")
    (tmp_path / "notes.md").write_text("ignored")
    prompts = load_dataset(f"transcripts:{tmp_path}", output_tokens=200)
    assert [(p.id, p.session, p.text) for p in prompts] == [
        ("budget", "budget", "The budget is fine."),
        ("standup", "standup", "We shipped the queue."),
    ]
    assert all(p.system == SUMMARY_SYSTEM_PROMPT and p.output_tokens == 200 for p in prompts)
    assert SUMMARY_SYSTEM_PROMPT.startswith("You summarize meeting transcripts")
    maker = TextMaker()
    assert prompts[0].prompt_tokens == maker.count(SUMMARY_SYSTEM_PROMPT) + maker.count("The budget is fine.")
