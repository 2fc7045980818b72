"""Convert the benchmark sample files into the Hugging Face hub schema that lm-eval's tasks read.

faco evaluates with lm-eval's own task YAML and swaps only the dataset for local JSONL files, so a
fixture data dir must hold rows in each benchmark's *hub* schema (the fields its doc_to_text /
doc_to_choice / doc_to_target / process_docs read), laid out as ``OUT/<benchmark>/<split>.jsonl``.
The samples at hand are mostly MosaicML Eval-Gauntlet files, already rendered into a prompt; each
converter below undoes that rendering. Where the sample lost information, the converter says so in
its docstring and fills the field with a documented stand-in (see docs/benchmark-data.md).

    python unit_tests/hub_samples.py SRC_DIR OUT_DIR [--limit N] [--benchmarks arc_easy,boolq]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

Rows = list[dict]
Splits = dict[str, Rows]  # split name -> hub rows


def read_jsonl(path: Path) -> Rows:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def letters(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def strip_prefix(text: str, prefix: str) -> str:
    """Remove a wrapper the gauntlet added; fail loudly if a row does not have it."""
    if not text.startswith(prefix):
        raise ValueError(f"expected {prefix!r} at the start of {text[:60]!r}")
    return text[len(prefix):]


def lettered_options(block: str, n: int = 4) -> tuple[str, list[str]]:
    """Split 'head\\nA. x\\nB. y...' (gauntlet's option listing) into the head and the option texts."""
    parts = re.split(r"\n[A-Z]\. ", block, maxsplit=n)
    if len(parts) != n + 1:
        raise ValueError(f"expected {n} lettered options in {block[:80]!r}")
    return parts[0], parts[1:]


# ---------------------------------------------------------------- one converter per benchmark


def arc(path: Path) -> Splits:
    """allenai/ai2_arc from gauntlet ('Question: <q>', 4 choice texts, gold index).

    Lossy: the original `id` and choice labels are gone (ids become 'gauntlet-<row>', labels A-D,
    though a few ARC items use 1-4), and gauntlet normalised every item to 4 choices.
    """
    rows = [
        {
            "id": f"gauntlet-{i}",
            "question": strip_prefix(r["query"], "Question: "),
            "choices": {"text": r["choices"], "label": letters(len(r["choices"]))},
            "answerKey": letters(len(r["choices"]))[r["gold"]],
        }
        for i, r in enumerate(read_jsonl(path))
    ]
    return {"test": rows}


def boolq(path: Path) -> Splits:
    """super_glue boolq from gauntlet ('Passage: <p>\\nQuestion: <q>?', choices [no, yes]).

    Lossy: super_glue passages start with '<Wikipedia title> -- '; the gauntlet passage has no title.
    lm-eval appends the '?' itself, so it is cut from the question; `idx` is the row number.
    """
    rows = []
    for i, r in enumerate(read_jsonl(path)):
        passage, question = strip_prefix(r["query"], "Passage: ").rsplit("\nQuestion: ", 1)
        rows.append({"passage": passage, "question": question.removesuffix("?"), "label": r["gold"], "idx": i})
    return {"validation": rows}


COPA_CONNECTORS = {", therefore": "effect", " because": "cause"}


def copa(path: Path) -> Splits:
    """super_glue copa from gauntlet ('<premise without its period>, therefore' / ' because').

    Lossy: the premise's final punctuation is assumed to be '.', and the choices' first letter is
    re-capitalised (gauntlet lower-cased it; lm-eval lower-cases it again, so rendering is exact).
    """
    rows = []
    for i, r in enumerate(read_jsonl(path)):
        connector = next(c for c in COPA_CONNECTORS if r["query"].endswith(c))
        choice1, choice2 = (c[:1].upper() + c[1:] for c in r["choices"])
        premise = r["query"].removesuffix(connector) + "."
        rows.append({"premise": premise, "choice1": choice1, "choice2": choice2,
                     "question": COPA_CONNECTORS[connector], "label": r["gold"], "idx": i})
    return {"validation": rows}


def piqa(source_dir: Path) -> Splits:
    """baber/piqa from the original release: valid.jsonl plus the line-aligned valid-labels.lst. Exact."""
    labels = (source_dir / "valid-labels.lst").read_text(encoding="utf-8").split()
    rows = read_jsonl(source_dir / "valid.jsonl")
    if len(rows) != len(labels):
        raise ValueError(f"piqa: {len(rows)} rows but {len(labels)} labels")
    return {"validation": [{**r, "label": int(label)} for r, label in zip(rows, labels)]}


def split_hellaswag_ctx(ctx: str) -> tuple[str, str]:
    """Guess ctx_a / ctx_b from the joined ctx: ctx_b is the lower-case fragment after the last '. '.

    lm-eval renders ctx_a + ' ' + ctx_b.capitalize(), so the split matters for one capital letter.
    ActivityNet rows end in such a fragment ('... on a roof. he'); WikiHow rows have ctx_b == ''.
    """
    head, sep, tail = ctx.rpartition(". ")
    if sep and tail[:1].islower():
        return head + ".", tail
    return ctx, ""


def hellaswag(source_dir: Path) -> Splits:
    """Rowan/hellaswag validation from the klosax text layout (6 lines a task), exact rows preferred.

    Lossy: ctx_a/ctx_b are split by `split_hellaswag_ctx` (a guess), and `ind`, `source_id`,
    `split_type` are lost (row number, '' and ''). Rows also present in the original jsonl sample
    (hf_dummy) are taken from there unchanged, apart from `label` as a string as on the hub.
    """
    originals = {r["ctx"]: r for r in read_jsonl(source_dir / "hf_dummy" / "hellaswag_val.jsonl")}
    lines = (source_dir / "hellaswag_val_2000.txt").read_text(encoding="utf-8").split("\n")
    rows = []
    for i in range(len(lines) // 6):
        head, label, *endings = lines[6 * i: 6 * i + 6]
        activity_label, ctx = head.split(": ", 1)
        ctx_a, ctx_b = split_hellaswag_ctx(ctx)
        row = originals.get(ctx) or {"ind": i, "activity_label": activity_label, "ctx_a": ctx_a, "ctx_b": ctx_b,
                                     "ctx": ctx, "split": "val", "split_type": "", "endings": endings,
                                     "source_id": ""}
        rows.append({**row, "label": str(label)})
    return {"validation": rows}


def openbookqa_tsv(path: Path) -> Rows:
    """One split of allenai/openbookqa (main) from the original release TSV. Exact up to whitespace."""
    with path.open(encoding="utf-8", newline="") as f:
        records = list(csv.DictReader(f, delimiter="\t"))
    rows = []
    for r in records:
        labels_texts = re.findall(r"\(([A-Z])\) (.*?)(?= \([A-Z]\) |$)", r["Choices"])
        rows.append({"id": r["ID"], "question_stem": r["Question Stem"],
                     "choices": {"text": [t.strip() for _, t in labels_texts], "label": [l for l, _ in labels_texts]},
                     "answerKey": r["Answer Key"]})
    return rows


def openbookqa(source_dir: Path) -> Splits:
    return {"test": openbookqa_tsv(source_dir / "Main" / "test.tsv"),
            "validation": openbookqa_tsv(source_dir / "Main" / "dev.tsv")}


NO_SPACE_BEFORE = tuple(".,;:!?'")


def winogrande_row(row: dict) -> dict:
    """allenai/winogrande from a gauntlet schema row (both sentence prefixes with an option filled in).

    The blank sits where the two context options start to differ, moved back to a word start.
    Lossy: options sharing leading words ('the bed'/'the blanket') lose them to the sentence, and
    the space after '_' is guessed (none before punctuation). lm-eval renders
    sentence[:blank] + option and the stripped text after the blank, so its prompts are unchanged.
    """
    first, second = row["context_options"]
    n = 0
    while n < min(len(first), len(second)) and first[n] == second[n]:
        n += 1
    while n > 0 and first[n - 1] != " ":
        n -= 1
    gap = "" if row["continuation"].startswith(NO_SPACE_BEFORE) else " "
    return {"sentence": first[:n] + "_" + gap + row["continuation"], "option1": first[n:], "option2": second[n:],
            "answer": str(row["gold"] + 1)}


def winogrande(path: Path) -> Splits:
    return {"validation": [winogrande_row(r) for r in read_jsonl(path)]}


def lambada(path: Path) -> Splits:
    """EleutherAI/lambada_openai from gauntlet (context, one-word continuation): joined by one space,
    so lm-eval's split on the last space gives both back. Exact if the original used one space."""
    return {"test": [{"text": r["context"] + " " + r["continuation"]} for r in read_jsonl(path)]}


def mmlu_csv(path: Path, suffix: str) -> Rows:
    """Rows of cais/mmlu from one re-formatted csv (header question,choice0..3,answer; int answer)."""
    subject = path.name.removesuffix(suffix)
    with path.open(encoding="utf-8", newline="") as f:
        return [{"question": r["question"], "subject": subject,
                 "choices": [r[f"choice{k}"] for k in range(4)], "answer": int(r["answer"])}
                for r in csv.DictReader(f)]


def mmlu(source_dir: Path) -> Splits:
    """cais/mmlu test and dev (the few-shot split): every subject in one file, `subject` from the name. Exact."""
    return {split: [row for p in sorted((source_dir / split).glob(f"*_{split}.csv")) for row in mmlu_csv(p, f"_{split}.csv")]
            for split in ("test", "dev")}


def squad(path: Path) -> Splits:
    """rajpurkar/squad (v1.1) validation from the official SQuAD v2.0 dev JSON (nested articles).

    SQuAD 2.0 dev holds the v1.1 dev questions plus unanswerable ones; only answerable questions are kept,
    so the rows are v1.1's schema and kind (v1.1 ids and answers; the article subset is the sample's).
    """
    rows = []
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if qa.get("is_impossible") or not qa["answers"]:
                    continue
                rows.append({"id": qa["id"], "title": article["title"], "context": paragraph["context"],
                             "question": qa["question"],
                             "answers": {"text": [a["text"] for a in qa["answers"]],
                                         "answer_start": [a["answer_start"] for a in qa["answers"]]}})
    return {"validation": rows}


def mathqa(path: Path) -> Splits:
    """regisss/math_qa test from gauntlet ('Question: <p>\\nA. ..\\nD. ..\\nAnswer: ').

    Lossy: gauntlet kept 4 of the 5 options, so `options` holds a-d only and ends in ' , ' (lm-eval's
    parser only takes a-d items followed by ', '); Rationale, formulas and category are ''.
    """
    rows = []
    for r in read_jsonl(path):
        body = strip_prefix(r["query"], "Question: ").removesuffix("\nAnswer: ")
        problem, options = lettered_options(body)
        rows.append({"Problem": problem, "Rationale": "", "correct": "abcd"[r["gold"]],
                     "options": "".join(f"{l} ) {o} , " for l, o in zip("abcd", options)),
                     "annotated_formula": "", "linear_formula": "", "category": ""})
    return {"test": rows}


def logiqa(path: Path) -> Splits:
    """EleutherAI/logiqa test from gauntlet ('Context: ..\\nQuestion: ..\\nChoices: A. ..\\nD. ..\\n').

    Exact as far as the gauntlet text is (some of its options have a first letter cut off, kept).
    """
    rows = []
    for r in read_jsonl(path):
        context, rest = strip_prefix(r["query"], "Context: ").split("\nQuestion: ", 1)
        question, options = lettered_options(rest.removesuffix("\n").replace("\nChoices: A. ", "\nA. ", 1))
        rows.append({"label": "abcd"[r["gold"]], "context": context, "question": question, "options": options})
    return {"test": rows}


def bigbench(path: Path) -> Splits:
    """hails/bigbench (zero-shot config) split `default` from gauntlet (question, lettered options).

    Lossy: `inputs` is the question without gauntlet's 'A. ..' listing and 'Answer: '; the hub's
    `inputs` lists the choices in BIG-bench's own layout instead, which the sample does not carry.
    Gauntlet re-sampled options to 4 per item (BIG-bench logical_deduction has 3/5/7).
    """
    rows = []
    for i, r in enumerate(read_jsonl(path)):
        question, _ = lettered_options(r["query"].removesuffix("\nAnswer: "), len(r["choices"]))
        rows.append({"inputs": question.rstrip("\n"), "targets": [r["choices"][r["gold"]]],
                     "multiple_choice_targets": r["choices"],
                     "multiple_choice_scores": [int(k == r["gold"]) for k in range(len(r["choices"]))], "idx": i})
    return {"default": rows}


def humaneval(path: Path) -> Splits:
    """openai/openai_humaneval test from the original HumanEval.jsonl.gz: the same five fields. Exact."""
    return {"test": read_jsonl(path)}


SAMPLE_FILES: dict[str, tuple[Callable[[Path], Splits], str]] = {
    # benchmark -> (converter, its input relative to the sample dir)
    "arc_easy": (arc, "arc_easy/gauntlet_arc_easy.jsonl"),
    "arc_challenge": (arc, "arc_challenge/gauntlet_arc_challenge.jsonl"),
    "boolq": (boolq, "boolq/gauntlet_boolq.jsonl"),
    "copa": (copa, "copa/gauntlet_copa.jsonl"),
    "piqa": (piqa, "piqa"),
    "hellaswag": (hellaswag, "hellaswag"),
    "openbookqa": (openbookqa, "openbookqa"),
    "winogrande": (winogrande, "winogrande/gauntlet_winogrande_dev.jsonl"),
    "lambada": (lambada, "lambada/gauntlet_lambada_openai.jsonl"),
    "mmlu": (mmlu, "mmlu"),
    "squad": (squad, "squad/dev-v2.0.first5articles.json"),
    "mathqa": (mathqa, "mathqa/gauntlet_math_qa.jsonl"),
    "logiqa": (logiqa, "logiqa/gauntlet_logi_qa.jsonl"),
    "bigbench_conceptual_combinations": (bigbench, "bigbench_conceptual_combinations/gauntlet_bigbench_conceptual_combinations.jsonl"),
    "bigbench_logical_deduction": (bigbench, "bigbench_logical_deduction/gauntlet_bigbench_logical_deduction.jsonl"),
    "humaneval": (humaneval, "humaneval/HumanEval.jsonl.gz"),
}


def write_hub_samples(source: Path, out: Path, limit: int | None = None,
                      benchmarks: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Write OUT/<benchmark>/<split>.jsonl for each benchmark; return benchmark -> splits written.

    `limit` keeps the first N rows of each split, so a fixture stays small and deterministic.
    """
    written = {}
    for name in benchmarks or SAMPLE_FILES:
        convert, relative = SAMPLE_FILES[name]
        splits = convert(Path(source) / relative)
        for split, rows in splits.items():
            target = Path(out) / name / f"{split}.jsonl"
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("w", encoding="utf-8") as f:
                f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows[:limit])
        written[name] = list(splits)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="dir with the benchmark sample files")
    parser.add_argument("out", type=Path, help="data dir to write, OUT/<benchmark>/<split>.jsonl")
    parser.add_argument("--limit", type=int, default=None, help="first N rows of each split")
    parser.add_argument("--benchmarks", default=None, help="comma-separated subset (default: all)")
    args = parser.parse_args(argv)
    chosen = args.benchmarks.split(",") if args.benchmarks else None
    for name, splits in write_hub_samples(args.source, args.out, args.limit, chosen).items():
        counts = ", ".join(f"{s}={sum(1 for _ in (args.out / name / f'{s}.jsonl').open())}" for s in splits)
        print(f"{name}: {counts}")


if __name__ == "__main__":
    main()
