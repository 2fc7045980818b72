"""A built FACO dataset directory on disk: written atomically by `faco build-dataset`, read back (and
checked file by file, so a damaged copy is one error naming the file) for the experiments.

    <out>/  data-*.arrow, dataset_info.json, state.json  (datasets.save_to_disk)
            summary.json  (items and drops per source, teacher, prompts, tokens, cost)
            dropped.jsonl (one line per dropped item, with its reason)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faco.data.items import FacoItem, ItemError, check_unique_ids
from faco.data.sources import SourceError

ITEM_COLUMNS = tuple(FacoItem.__dataclass_fields__)
REBUILD = "rebuild it with `faco build-dataset` (paid replies come from the reply cache)"


def write_dataset(items: Sequence[FacoItem], dropped: Sequence[Any], summary: dict[str, Any], out: Path) -> None:
    """The dataset dir, written beside and then moved in place: a crash never leaves half a dataset."""
    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()
    if out.exists() and any(out.iterdir()) and not (out / "summary.json").is_file():
        raise SourceError(f"{out}: exists and is not a FACO dataset; refusing to overwrite it")
    rows = [{**item.to_dict(), "provenance": json.dumps(dict(item.provenance), ensure_ascii=False)}
            for item in items]
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    Dataset.from_list(rows, features=_features()).save_to_disk(str(staging))
    (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with (staging / "dropped.jsonl").open("w", encoding="utf-8") as lines:
        for outcome in dropped:
            lines.write(json.dumps({"source": outcome.source, "reason": outcome.drop, **outcome.detail},
                                   ensure_ascii=False) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)


def _features() -> Any:
    from datasets import Features, List, Value

    text = Value("string")
    return Features({"id": text, "source": text, "domain": text, "question": text, "options": List(text),
                     "correct": Value("int64"), "false_option": Value("int64"), "true_explanation": text,
                     "false_explanation": text, "source_explanation": text, "provenance": text})


def load_dataset_items(path: Path | str) -> list[FacoItem]:
    """The items of a built FACO dataset dir; one ItemError naming the damaged file if it is not one."""
    from datasets import load_from_disk

    path = Path(path)
    _check_files(path)
    try:
        rows = load_from_disk(str(path))
        missing = [c for c in ITEM_COLUMNS if c not in rows.column_names]
        rows = list(rows) if not missing else []
    except Exception as error:  # noqa: BLE001 - the files passed their checks; say which load failed
        raise ItemError(f"{path}: the dataset does not load ({type(error).__name__}: {error}); {REBUILD}") from None
    if missing:
        raise ItemError(f"{path}: not a FACO dataset: missing column(s) {', '.join(missing)}")
    items = []
    for index, row in enumerate(rows):
        where = f"{path} row {index}"
        try:
            row = {**row, "provenance": json.loads(row["provenance"] or "{}")}
        except json.JSONDecodeError as error:
            raise ItemError(f"{where}: field 'provenance' is not JSON ({error.msg})") from None
        items.append(FacoItem.from_dict(row, where))
    check_unique_ids(items)
    return items


def _check_files(path: Path) -> None:
    """Name the damaged file (a truncated copy, a half-synced dir) before `datasets` fails somewhere deep."""
    if not (path / "summary.json").is_file() and not (path / "dataset_info.json").is_file():
        raise ItemError(f"{path}: not a FACO dataset (no summary.json / dataset_info.json); "
                        f"build one with `faco build-dataset --out {path}`")
    documents = {}
    for name in ("summary.json", "dataset_info.json", "state.json"):
        try:
            documents[name] = json.loads((path / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ItemError(f"{path / name}: missing; {REBUILD}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ItemError(f"{path / name}: not valid JSON, truncated or damaged ({error}); {REBUILD}") from None
    files = documents["state.json"].get("_data_files") if isinstance(documents["state.json"], dict) else None
    if not isinstance(files, list) or not files:
        raise ItemError(f"{path / 'state.json'}: lists no data files (_data_files); {REBUILD}")
    for entry in files:
        _check_arrow(path / str(entry.get("filename") if isinstance(entry, dict) else entry))


def _check_arrow(file: Path) -> None:
    import pyarrow as pa

    try:
        with pa.memory_map(str(file)) as source:
            pa.ipc.open_stream(source).read_all()  # datasets writes the Arrow stream format
    except FileNotFoundError:
        raise ItemError(f"{file}: missing (listed in state.json); {REBUILD}") from None
    except (OSError, pa.ArrowException) as error:
        raise ItemError(f"{file}: not a readable Arrow file, truncated or damaged ({error}); {REBUILD}") from None
