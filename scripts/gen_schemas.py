"""Regenerate the packaged JSON Schema files from the pydantic models.

Run after changing brittle/results.py; tests/unit/test_results_schema.py fails until you do.
"""

from __future__ import annotations

import json

from brittle.results import results_json_schema, schema_path


def main() -> None:
    path = schema_path()
    path.write_text(json.dumps(results_json_schema(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
