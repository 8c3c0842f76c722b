"""E-mails to many recipients are rendered once per template, language and shared values, and
filled in per recipient (app/core/templating.py, render_email_for): byte for byte what
rendering the templates whole gives, for every name a signer may have; a template that does
more with a recipient's value than print it is rendered whole."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from jinja2 import DictLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from app.core import i18n, templating
from app.core.i18n import translate
from app.core.templating import render_email, render_email_for
from app.updates.tasks import _paragraphs

NAMES = [
    "Kim Min-jun",
    "김민준",
    "Олена Коваленко",
    "<script>alert('x')</script> & \"friends\"",
    "O'Brien & Sons <ltd>",
    "{title} {name} %s {{ name }}",  # format and template syntax stays text
    "\ue000name\ue001 \ue000manage_url\ue001",  # the markers' own characters
    "🙂 emoji",
    "",
]
SHARED: dict[str, Any] = {
    "title": 'No forced return <of> "captured" soldiers & others',
    "petition_url": "https://example.org/petitions/no-forced-return?lang=ko",
}


@pytest.mark.parametrize("locale", ["en", "ko", "uk"])
@pytest.mark.parametrize("name", NAMES)
def test_each_signer_s_e_mail_is_what_rendering_it_whole_gives(locale: str, name: str) -> None:
    links = {
        "manage_url": f"https://example.org/manage/abc?x=1&lang={locale}",
        "confirm_url": f"https://example.org/signatures/confirm/t.o.k?lang={locale}",
        "unsubscribe_url": f"https://example.org/unsubscribe/u.v?lang={locale}",
    }
    body = "First <b>news</b> & more.\nSecond line {name}\n\n{{ name }} para"
    cases: list[tuple[str, tuple[str, ...], dict[str, Any]]] = [
        ("signature_confirmation", ("confirm_url", "manage_url"), {"ttl_days": 7}),
        ("signature_already_signed", ("manage_url",), {}),
        (
            "petition_update",
            ("unsubscribe_url", "manage_url"),
            {"subject": "News & <views>", "body": body, "paragraphs": _paragraphs(body)},
        ),
    ]
    for template, keys, extra in cases:
        personal = {"name": name, **{key: links[key] for key in keys}}
        whole = render_email(
            template, t=partial(translate, locale), locale=locale, **personal, **SHARED, **extra
        )
        # Twice: the first builds the rendering kept, the second fills it in.
        for _ in range(2):
            once = render_email_for(template, locale=locale, personal=personal, **SHARED, **extra)
            assert once == whole
        names = tuple(sorted(personal))
        kept = [v for k, v in templating._skeletons.items() if k[:3] == (template, locale, names)]  # noqa: SLF001
        assert kept and kept[-1].text is not None and kept[-1].html is not None  # really kept


def test_a_shared_value_with_the_markers_characters_is_rendered_whole() -> None:
    body = "An organiser wrote \ue000name\ue001 in the update"
    shared = {**SHARED, "subject": "S", "body": body, "paragraphs": _paragraphs(body)}
    personal = {"name": "Ann", "unsubscribe_url": "https://u.example.org", "manage_url": "m"}
    whole = render_email(
        "petition_update", t=partial(translate, "en"), locale="en", **personal, **shared
    )
    assert render_email_for("petition_update", locale="en", personal=personal, **shared) == whole
    assert body in whole[0] and "Ann" in whole[0]


def environment(templates: dict[str, str]) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=DictLoader(templates),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
    )


@pytest.fixture(autouse=True)
def _nothing_kept() -> Iterator[None]:
    """Each test starts and ends with no kept rendering (its templates' names are reused)."""
    templating._skeletons.clear()  # noqa: SLF001
    yield
    templating._skeletons.clear()  # noqa: SLF001


@pytest.mark.parametrize(
    "use",
    [
        "{{ name|upper }}",  # a filter
        "{{ name|truncate(12) }}",
        "{{ name|replace(' ', '_') }}",
        "{% if name|length > 25 %}long{% endif %}{{ name }}",  # a test on the value
        "{% if name == 'Ann' %}Ann!{% endif %}{{ name }}",
        "{% if name %}Dear {{ name }}{% else %}Hello{% endif %}",  # on its being empty
        "{% set who = name %}{{ who }}",
        "{{ name|safe }}",  # not escaped in HTML
        "{{ name|urlencode }}",
        "{{ name ~ '!' }}",
    ],
)
def test_a_template_that_does_more_with_a_value_is_rendered_whole(
    use: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment({"x.txt": f"Hi {use}.", "x.html": f"<p>Hi {use}.</p>"})
    monkeypatch.setattr(templating, "email_environment", lambda: env)
    for name in ["Ann", "Bartholomew Fitzgerald <b> the Third", "", "김", "A B"]:
        got = render_email_for("x", locale="en", personal={"name": name})
        context = {"t": partial(translate, "en"), "locale": "en", "name": name}
        whole = (
            env.get_template("x.txt").render(context),
            env.get_template("x.html").render(context),
        )
        assert got == whole, name
    (kept,) = templating._skeletons.values()  # noqa: SLF001
    assert kept.text is None and kept.html is None  # read as more than printing: whole


def test_a_translation_that_formats_a_value_is_rendered_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`t("key", name=name)` is filled in only where the key's text places the value as a
    bare {name}: a format spec (here: the first three characters) is more than that."""
    env = environment(
        {"w.txt": '{{ t("w.hi", name=name) }}', "w.html": '{{ t("w.hi", name=name) }}'}
    )
    monkeypatch.setattr(templating, "email_environment", lambda: env)
    texts = {"w.hi": "Hi {name:.3}!"}
    monkeypatch.setattr(i18n, "catalog", lambda locale: texts)
    monkeypatch.setattr(templating, "catalog", lambda locale: texts)
    assert render_email_for("w", locale="en", personal={"name": "Bartholomew"}) == ("Hi Bar!",) * 2
    assert render_email_for("w", locale="en", personal={"name": "Ann <b>"}) == (
        "Hi Ann!",
        "Hi Ann!",
    )
    texts["w.hi"] = "Hi {name}!"  # as the real catalogs place names
    templating._skeletons.clear()  # noqa: SLF001
    assert render_email_for("w", locale="en", personal={"name": "Ann <b>"}) == (
        "Hi Ann <b>!",
        "Hi Ann &lt;b&gt;!",
    )
    assert all(k.text and k.html for k in templating._skeletons.values())  # noqa: SLF001


def test_a_value_s_type_is_part_of_what_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    env = environment({"v.txt": "{{ n }} {{ name }}", "v.html": "{{ n }} {{ name }}"})
    monkeypatch.setattr(templating, "email_environment", lambda: env)
    assert render_email_for("v", locale="en", personal={"name": "A"}, n=1)[0] == "1 A"
    assert render_email_for("v", locale="en", personal={"name": "A"}, n=True)[0] == "True A"
    assert render_email_for("v", locale="en", personal={"name": "A"}, n=1.0)[0] == "1.0 A"


def test_a_changed_layout_is_rendered_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kept rendering is dropped when any file it was made from changed, the layout a
    template extends included."""
    layout = "Top {% block body %}{% endblock %}"
    child = '{% extends "base.txt" %}{% block body %}{{ name }}{% endblock %}'
    env = environment({"base.txt": layout, "u.txt": child, "u.html": "{{ name }}"})
    monkeypatch.setattr(templating, "email_environment", lambda: env)
    monkeypatch.setattr(templating, "TEMPLATE_CHECK_SECONDS", 0.0)  # (looks every time)
    assert render_email_for("u", locale="en", personal={"name": "A"})[0] == "Top A"
    env.loader = DictLoader({"base.txt": "New " + layout, "u.txt": child, "u.html": "{{ name }}"})
    env.cache.clear()  # type: ignore[union-attr]
    assert render_email_for("u", locale="en", personal={"name": "B"})[0] == "New Top B"


def test_a_changed_template_is_rendered_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    """A template reloaded from disk (auto_reload, in development) is another Template:
    what was kept for the old one is not used once the worker looks again, which it does at
    most once every TEMPLATE_CHECK_SECONDS (looking stats every file)."""
    env = environment({"y.txt": "One {{ name }}", "y.html": "<p>One {{ name }}</p>"})
    monkeypatch.setattr(templating, "email_environment", lambda: env)
    monkeypatch.setattr(templating, "TEMPLATE_CHECK_SECONDS", 60.0)
    assert render_email_for("y", locale="en", personal={"name": "A"}) == ("One A", "<p>One A</p>")
    env.loader = DictLoader({"y.txt": "Two {{ name }}", "y.html": "<p>Two {{ name }}</p>"})
    env.cache.clear()  # type: ignore[union-attr]
    assert render_email_for("y", locale="en", personal={"name": "B"}) == ("One B", "<p>One B</p>")
    [kept] = templating._skeletons.values()  # noqa: SLF001
    kept.checked_at -= templating.TEMPLATE_CHECK_SECONDS  # a second later
    assert render_email_for("y", locale="en", personal={"name": "B"}) == ("Two B", "<p>Two B</p>")


def test_the_renderings_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    env = environment({"z.txt": "{{ title }} {{ name }}", "z.html": "{{ title }} {{ name }}"})
    monkeypatch.setattr(templating, "email_environment", lambda: env)
    monkeypatch.setattr(templating, "SKELETONS_KEPT", 5)
    for number in range(12):
        text, _ = render_email_for("z", locale="en", personal={"name": "N"}, title=f"T{number}")
        assert text == f"T{number} N"
    assert len(templating._skeletons) == 5  # noqa: SLF001
