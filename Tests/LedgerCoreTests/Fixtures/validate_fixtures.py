#!/usr/bin/env python3
"""Validates fixture instances with Python's jsonschema package (Draft 2020-12).

usage: validate_fixtures.py SCHEMAS_DIR FIXTURES.ndjson
Each fixture line is {"schema": "<path under Schemas/>", "instance": <value>}.
Prints one line per fixture: 1 if valid, 0 if not.
"""
import glob
import json
import os
import sys

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

root, fixtures = sys.argv[1], sys.argv[2]
resources, by_path = [], {}
for path in glob.glob(os.path.join(root, "**", "*.json"), recursive=True):
    with open(path) as f:
        doc = json.load(f)
    if "$schema" not in doc:
        continue  # not a schema (Schemas/compliance/controls.json is a mapping)
    Draft202012Validator.check_schema(doc)
    resources.append((doc["$id"], Resource.from_contents(doc)))
    by_path[os.path.relpath(path, root)] = doc
registry = Registry().with_resources(resources)
validators = {p: Draft202012Validator(d, registry=registry) for p, d in by_path.items()}
with open(fixtures) as f:
    for line in f:
        case = json.loads(line)
        print(1 if validators[case["schema"]].is_valid(case["instance"]) else 0)
