"""Browser tests of the HTML report (a package, so that its conftest does not clash with
tests/conftest.py under --doctest-modules)."""
