# ruff: noqa: E501  (letter text: a line is a paragraph)
"""Built-in delivery letters, used when a campaign has no delivery template in a language.

They are ordinary templates (the same variables, the same sandbox and the same checks as an
organiser's), so an organiser can copy one as a starting point.
"""

from __future__ import annotations

DELIVERY: dict[str, tuple[str, str]] = {
    "en": (
        "Petition: {{ petition.title }} ({{ delivery.confirmed_count|number }} {{ delivery.confirmed_count|plural(one='signature', other='signatures') }})",
        """Dear {{ target.name }},

On behalf of the {{ delivery.confirmed_count|number }} {{ delivery.confirmed_count|plural(one='person who signed', other='people who signed') }} the petition "{{ petition.title }}", we deliver it to you as {{ target.role or target.organisation or "its addressee" }}.

The petition: {{ petition.url }}

Confirmed signatures by country:
{% for row in delivery.countries %}- {{ row.name }}: {{ row.count|number }}
{% endfor %}
{% if delivery.annex_url %}The list of signatories, {{ delivery.annex_filename }} ({{ delivery.annex_rows|number }} {{ delivery.annex_rows|plural(one='row', other='rows') }}), is too large to attach: download it (gzip-compressed) from
{{ delivery.annex_url }}
manifest.json is attached. {% else %}Attached are {{ delivery.annex_filename }}, the list of signatories ({{ delivery.annex_rows|number }} {{ delivery.annex_rows|plural(one='row', other='rows') }}), and manifest.json. {% endif %}The SHA-256 of the list is:
{{ delivery.annex_sha256 }}
so you can check that it reached you unaltered.

Yours sincerely,
{{ campaign.name }}
{{ date }}""",
    ),
    "ko": (
        "청원: {{ petition.title }} (서명 {{ delivery.confirmed_count|number }}명)",
        """{{ target.name }} 귀하,

청원 "{{ petition.title }}"에 서명한 {{ delivery.confirmed_count|number }}명을 대신하여 이 청원을 전달합니다.

청원: {{ petition.url }}

국가별 확인된 서명:
{% for row in delivery.countries %}- {{ row.name }}: {{ row.count|number }}
{% endfor %}
{% if delivery.annex_url %}서명자 명단 {{ delivery.annex_filename }}({{ delivery.annex_rows|number }}행)은 첨부하기에 너무 커서 다음 주소에서 (gzip 압축 파일로) 내려받으실 수 있습니다:
{{ delivery.annex_url }}
manifest.json을 첨부합니다. {% else %}서명자 명단 {{ delivery.annex_filename }}({{ delivery.annex_rows|number }}행)과 manifest.json을 첨부합니다. {% endif %}명단의 SHA-256 값은 다음과 같습니다:
{{ delivery.annex_sha256 }}
이 값으로 명단이 변경되지 않았음을 확인하실 수 있습니다.

{{ campaign.name }} 드림
{{ date }}""",
    ),
    "uk": (
        "Петиція: {{ petition.title }} ({{ delivery.confirmed_count|number }} {{ delivery.confirmed_count|plural(one='підпис', few='підписи', many='підписів', other='підпису') }})",
        """Шановний(а) {{ target.name }},

Від імені {{ delivery.confirmed_count|number }} {{ delivery.confirmed_count|plural(one='людини, яка підписала', few='людей, які підписали', many='людей, які підписали', other='людини, яка підписала') }} петицію «{{ petition.title }}», передаємо її вам.

Петиція: {{ petition.url }}

Підтверджені підписи за країнами:
{% for row in delivery.countries %}- {{ row.name }}: {{ row.count|number }}
{% endfor %}
{% if delivery.annex_url %}Список підписантів {{ delivery.annex_filename }} ({{ delivery.annex_rows|number }} {{ delivery.annex_rows|plural(one='рядок', few='рядки', many='рядків', other='рядка') }}) завеликий для вкладення: завантажте його (стиснутим gzip) за адресою
{{ delivery.annex_url }}
У додатку — manifest.json. {% else %}У додатку — {{ delivery.annex_filename }}, список підписантів ({{ delivery.annex_rows|number }} {{ delivery.annex_rows|plural(one='рядок', few='рядки', many='рядків', other='рядка') }}), і manifest.json. {% endif %}SHA-256 списку:
{{ delivery.annex_sha256 }}
за ним можна перевірити, що список не змінено.

З повагою,
{{ campaign.name }}
{{ date }}""",
    ),
}
