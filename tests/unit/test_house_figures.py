"""bench.house counts the product only: the tooling that used to live in worker/ is left out."""

from __future__ import annotations

from pathlib import Path

from bench.house import longest_functions, product_files


def test_the_old_tooling_is_not_counted_as_product(tmp_path: Path) -> None:
    # a checkout from before the development package: its tooling still inside worker/
    for parts in (("core", "x.py"), ("sandbox", "app.py"), ("chaos.py",), ("pipeline", "chaos.py")):
        path = tmp_path.joinpath("worker", *parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("def f():\n    return 1\n", encoding="utf-8")
    found = [str(p.relative_to(tmp_path)) for p in product_files(tmp_path)]
    assert found == ["worker/core/x.py", "worker/pipeline/chaos.py"]
    assert longest_functions(product_files(tmp_path), tmp_path, 1) == [(2, "worker/pipeline/chaos.py:f")]
