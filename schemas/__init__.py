"""JSON Schema 2020-12 files, one per record kind; shipped in the wheel as `er.schemas`."""
