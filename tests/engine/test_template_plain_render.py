"""The templates rendered without Jinja (a variable path, a string literal) render exactly as Jinja renders them."""

from __future__ import annotations

import pytest

from headwater.engine import templates
from headwater.services.implied_graphs import literal

CONTEXT = {"llm": {"text": "hi {{ x }}", "n": 3, "none": None}, "sys": {"query": "q"}, "a": "b", "items": [1, 2]}
SOURCES = [
    "{{ llm.text }}", "{{sys.query}}", "{{ a }}", "{{ llm.n }}", "{{ llm.none }}", "{{ llm.missing }}", "{{ a.b }}",
    "{{ items }}", "{{ nowhere }}", " {{ a }}", "{{ a }} ", "{{ a }}{{ a }}",
    literal('he said "hi"\n\\ {{ x }} }} é'), literal("tab\tand \u2603"), '{{ "a" ~ "b" }}', "{{ 'single' }}",
]


@pytest.mark.parametrize("source", SOURCES)
def test_the_plain_path_renders_what_jinja_renders(source, monkeypatch):
    plain = templates._plain_render(source, CONTEXT)
    monkeypatch.setattr(templates, "_plain_render", lambda source, context: None)
    assert templates.render(source, CONTEXT) == (plain if plain is not None else templates.render(source, CONTEXT))


def test_the_plain_path_takes_the_common_templates():
    assert templates._plain_render("{{ llm.text }}", CONTEXT) == "hi {{ x }}"  # never rendered twice
    assert templates._plain_render(literal("{% raw %}"), CONTEXT) == "{% raw %}"
    assert templates._plain_render("{{ llm.n }}", CONTEXT) is None  # not a string: Jinja decides
