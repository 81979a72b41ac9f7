from __future__ import annotations

import inspect
import re

import pytest

import optuna_hpi


def _examples() -> list[tuple[str, str]]:
    out = []
    for name in optuna_hpi.__all__:
        doc = (inspect.getdoc(getattr(optuna_hpi, name)) or "") + "\n"
        for i, block in enumerate(
            re.findall(r"\.\. code-block:: python\n\n((?:(?: {4}.*)?\n)+)", doc)
        ):
            out.append((f"{name}-{i}", inspect.cleandoc(block)))
    return out


def test_every_public_class_has_an_example() -> None:
    missing = [
        n
        for n in optuna_hpi.__all__
        if inspect.isclass(getattr(optuna_hpi, n))
        and "code-block:: python" not in (inspect.getdoc(getattr(optuna_hpi, n)) or "")
    ]
    assert not missing, f"public classes without a runnable example: {missing}"


@pytest.mark.parametrize("name,code", _examples(), ids=[n for n, _ in _examples()])
def test_docstring_example_runs(name: str, code: str, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"<{name}>", "exec"), {"__name__": "__example__"})
