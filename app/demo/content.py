"""Demo content loaded on first run: one real campaign, its petition and the officials it addresses.

Written in the project's own words from the campaign brief (facts as reported in February 2026),
in English, Korean and Ukrainian. Every e-mail and postal address below is deliberately fake:
e-mail addresses use reserved ``.example`` domains and postal addresses are marked as demo data.
"""

from typing import Any

CAMPAIGN: dict[str, Any] = {
    "slug": "protect-captured-north-korean-soldiers",
    "default_locale": "en",
    "translations": {
        "en": {
            "name": "Protect the captured North Korean soldiers",
            "description": (
                "In early 2025 Ukrainian forces captured two North Korean soldiers in Russia's "
                "Kursk region, and both have said they want to go to South Korea, not back to "
                "North Korea. We call on Ukraine, the Republic of Korea and the European Union "
                "to make sure they are never forcibly returned to a country where they risk "
                "torture, forced labour or execution."
            ),
        },
        "ko": {
            "name": "생포된 북한군 병사들을 보호해 주세요",
            "description": (
                "2025년 초 러시아 쿠르스크 지역에서 우크라이나군에 생포된 북한군 병사 두 명은 "
                "북한이 아닌 한국으로 가고 싶다는 뜻을 밝혔습니다. 우크라이나와 대한민국, "
                "유럽연합이 이들을 고문과 강제노동, 처형의 위험이 기다리는 북한으로 결코 "
                "강제송환하지 않도록 힘써 줄 것을 촉구합니다."
            ),
        },
        "uk": {
            "name": "Захистімо полонених північнокорейських військових",
            "description": (
                "На початку 2025 року українські військові взяли в полон у Курській області Росії "
                "двох північнокорейських солдатів. Обидва заявили, що хочуть поїхати до Південної "
                "Кореї, а не повертатися до Північної. Ми закликаємо Україну, Республіку Корея та "
                "Європейський Союз зробити все, щоб їх ніколи не повернули примусово туди, де їм "
                "загрожують катування, примусова праця чи страта."
            ),
        },
    },
    "currencies": ["KRW", "EUR", "UAH", "USD"],
}

PETITION: dict[str, Any] = {
    "slug": "no-forced-return",
    "goal": 100000,
    "default_locale": "en",
    "translations": {
        "en": {
            "title": "Protect the two captured North Korean soldiers from forced return",
            "summary": (
                "Captured in Russia's Kursk region in early 2025, two North Korean soldiers have "
                "said they want to go to South Korea. Do not send them back to North Korea or hand "
                "them to Russia: transfer them to safety, as they wish."
            ),
            "body": (
                "To the President of Ukraine, the Ministry of Foreign Affairs of Ukraine, the "
                "Ministry of Unification and the Ministry of Foreign Affairs of the Republic of "
                "Korea, and the High Representative of the European Union for Foreign Affairs and "
                "Security Policy:"
                "\n\n"
                "In early 2025, Ukrainian forces captured two North Korean soldiers in Russia's "
                "Kursk region. They were among the thousands of soldiers North Korea sent to fight "
                "alongside Russian forces. More than a year later, as of February 2026, their "
                "future has still not been decided."
                "\n\n"
                "Both men have said they want to go to South Korea rather than be sent back to "
                "North Korea. Seoul has said it would accept them, and a senior EU official has "
                "said the EU stands ready to assist. Yet activists report that talks between Seoul "
                "and Kyiv have stalled."
                "\n\n"
                "Sending them back would put their lives in danger. North Korea's military orders "
                "its soldiers to die rather than be captured. Soldiers who are returned risk "
                "enforced disappearance, torture, forced labour or execution, and their families "
                'may be punished too, under what is known as "punishment to three generations". '
                "We fear that, without an agreement, the two men could be handed over to Russia or "
                "returned to North Korea as part of a peace settlement."
                "\n\n"
                "International law leaves room to prevent this. The Third Geneva Convention allows "
                "prisoners of war to be held until active hostilities end, but they may be "
                "repatriated or transferred to a third country earlier. The ICRC's 2020 Commentary "
                "explains that repatriation is subject to an exception where a prisoner faces a "
                "real risk of violation of fundamental rights by their own country, which matches "
                "the principle of non-refoulement."
                "\n\n"
                "In February 2026, the UN Special Rapporteur on human rights in the DPRK said that "
                "Ukraine should not send prisoners of war where they risk torture. And Article 3 "
                "of the South Korean Constitution treats North Koreans as citizens of the South."
                "\n\n"
                "We therefore ask you to protect these two soldiers from forced return, and to "
                "work together to transfer them to South Korea, or to a safe third country, in "
                "line with their wishes and the principle of non-refoulement."
            ),
        },
        "ko": {
            "title": "생포된 북한군 병사 두 명의 강제송환을 막아 주세요",
            "summary": (
                "2025년 초 러시아 쿠르스크 지역에서 생포된 북한군 병사 두 명은 한국으로 가고 "
                "싶다고 밝혔습니다. 이들을 북한으로 돌려보내거나 러시아에 넘기지 말고, 본인들의 "
                "뜻에 따라 안전한 곳으로 보내 주십시오."
            ),
            "body": (
                "우크라이나 대통령, 우크라이나 외교부, 대한민국 통일부와 외교부, 그리고 유럽연합 "
                "외교안보정책 고위대표께"
                "\n\n"
                "2025년 초, 우크라이나군은 러시아 쿠르스크 지역에서 북한군 병사 두 명을 "
                "생포했습니다. 이들은 러시아군과 함께 싸우도록 파병된 수천 명의 북한군 가운데 "
                "일부였습니다. 그로부터 1년이 넘게 지난 2026년 2월 현재까지도 이들의 앞날은 "
                "정해지지 않았습니다."
                "\n\n"
                "두 사람은 모두 북한으로 돌아가는 대신 한국으로 가고 싶다는 뜻을 밝혔습니다. "
                "한국 정부는 이들을 받아들이겠다고 했고, 유럽연합의 한 고위 관계자도 EU가 도울 "
                "준비가 되어 있다고 말했습니다. 그러나 활동가들에 따르면 한국과 우크라이나 사이의 "
                "협의는 교착 상태에 빠져 있습니다."
                "\n\n"
                "이들을 북한으로 돌려보내면 목숨이 위태로워집니다. 북한군은 병사들에게 포로가 "
                "되느니 차라리 죽으라고 명령합니다. 송환된 병사는 강제실종, 고문, 강제노동, "
                "처형의 위험에 놓이며, 이른바 '3대에 걸친 연좌 처벌'로 가족까지 처벌받을 수 "
                "있습니다. 우리는 합의가 이루어지지 않으면 두 사람이 평화 협상의 일환으로 "
                "러시아에 넘겨지거나 북한으로 송환될까 우려합니다."
                "\n\n"
                "국제법은 이를 막을 길을 열어 두고 있습니다. 제3제네바협약은 적극적 적대행위가 "
                "끝날 때까지 전쟁포로를 억류할 수 있도록 하지만, 그 전에 송환하거나 제3국으로 "
                "이송하는 것도 허용합니다. 국제적십자위원회(ICRC)의 2020년 주석서는 포로가 "
                "자국에 의해 기본권을 침해당할 실질적 위험에 처한 경우 송환에 예외가 적용된다고 "
                "설명하며, 이는 강제송환금지(non-refoulement) 원칙과도 일치합니다."
                "\n\n"
                "2026년 2월, 유엔 북한인권 특별보고관은 우크라이나가 고문의 위험이 있는 곳으로 "
                "전쟁포로를 보내서는 안 된다고 밝혔습니다. 또한 대한민국 헌법 제3조는 북한 "
                "주민을 대한민국 국민으로 봅니다."
                "\n\n"
                "이에 우리는 두 병사를 강제송환으로부터 보호하고, 관계 당국이 협력하여 본인들의 "
                "뜻과 강제송환금지 원칙에 따라 이들을 대한민국 또는 안전한 제3국으로 이송할 것을 "
                "촉구합니다."
            ),
        },
        "uk": {
            "title": (
                "Захистіть двох полонених північнокорейських солдатів від примусового повернення"
            ),
            "summary": (
                "Двоє північнокорейських солдатів, узятих у полон у Курській області Росії на "
                "початку 2025 року, заявили, що хочуть поїхати до Південної Кореї. Не "
                "повертайте їх до Північної Кореї й не передавайте Росії — переведіть їх у "
                "безпеку, як вони того бажають."
            ),
            "body": (
                "Президентові України, Міністерству закордонних справ України, Міністерству "
                "об’єднання та Міністерству закордонних справ Республіки Корея, Високому "
                "представникові Європейського Союзу із закордонних справ та безпекової політики"
                "\n\n"
                "На початку 2025 року українські військові взяли в полон у Курській області Росії "
                "двох північнокорейських солдатів. Вони були серед тисяч військових, яких Північна "
                "Корея відправила воювати на боці російських сил. Минуло понад рік, але станом на "
                "лютий 2026 року їхня доля досі не вирішена."
                "\n\n"
                "Обидва чоловіки заявили, що хочуть поїхати до Південної Кореї, а не повертатися "
                "до Північної. Сеул заявив, що готовий їх прийняти, а високопосадовець ЄС сказав, "
                "що Євросоюз готовий допомогти. Проте, за словами активістів, переговори між "
                "Сеулом і Києвом зайшли в глухий кут."
                "\n\n"
                "Повернення до КНДР поставило б їхнє життя під загрозу. Військове командування "
                "Північної Кореї наказує солдатам радше загинути, ніж потрапити в полон. "
                "Повернутим військовим загрожують насильницьке зникнення, катування, примусова "
                "праця або страта, а їхні родини теж можуть зазнати покарання — так зване "
                "«покарання до третього коліна». Ми побоюємося, що без домовленості їх можуть "
                "передати Росії або повернути до Північної Кореї в межах мирного врегулювання."
                "\n\n"
                "Міжнародне право дає змогу цьому запобігти. Третя Женевська конвенція дозволяє "
                "утримувати військовополонених до припинення активних воєнних дій, але їх можна "
                "репатріювати або передати третій країні й раніше. У Коментарі Міжнародного "
                "комітету Червоного Хреста (МКЧХ) 2020 року пояснено, що з обов’язку репатріації "
                "існує виняток, коли полонений стикається з реальним ризиком порушення його "
                "основоположних прав з боку власної держави. Це відповідає принципу "
                "non-refoulement — забороні примусового повернення."
                "\n\n"
                "У лютому 2026 року, за словами Спеціального доповідача ООН з питань прав людини "
                "в КНДР, Україна не повинна відправляти військовополонених туди, де їм загрожують "
                "катування. До того ж стаття 3 Конституції Південної Кореї визнає жителів "
                "Північної Кореї громадянами Південної."
                "\n\n"
                "Тож ми закликаємо вас захистити цих двох солдатів від примусового повернення та "
                "спільно забезпечити їхню передачу до Південної Кореї або до безпечної третьої "
                "країни — відповідно до їхнього бажання та принципу non-refoulement."
            ),
        },
    },
}

TARGET_GROUPS: list[dict[str, Any]] = [
    {
        "key": "ukraine",
        "names": {
            "en": "Government of Ukraine",
            "ko": "우크라이나 정부",
            "uk": "Влада України",
        },
        "targets": [
            {
                "key": "ua-president",
                "name": "President of Ukraine",
                "role": "President",
                "organisation": "Office of the President of Ukraine",
                "translations": {
                    "ko": {
                        "name": "우크라이나 대통령",
                        "role": "대통령",
                        "organisation": "우크라이나 대통령실",
                    },
                    "uk": {
                        "name": "Президент України",
                        "role": "Президент",
                        "organisation": "Офіс Президента України",
                    },
                },
                "country": "UA",
                "language": "uk",
                "email": "president@ukraine.example",
                "postal_address": (
                    "DEMO ADDRESS — not for real mail\n1 Example Street\nKyiv, Ukraine"
                ),
            },
            {
                "key": "ua-mfa",
                "name": "Minister of Foreign Affairs of Ukraine",
                "role": "Minister",
                "organisation": "Ministry of Foreign Affairs of Ukraine",
                "translations": {
                    "ko": {
                        "name": "우크라이나 외교부 장관",
                        "role": "장관",
                        "organisation": "우크라이나 외교부",
                    },
                    "uk": {
                        "name": "Міністр закордонних справ України",
                        "role": "Міністр",
                        "organisation": "Міністерство закордонних справ України",
                    },
                },
                "country": "UA",
                "language": "uk",
                "email": "mfa@ukraine.example",
                "postal_address": (
                    "DEMO ADDRESS — not for real mail\n2 Example Square\nKyiv, Ukraine"
                ),
            },
        ],
    },
    {
        "key": "korea",
        "names": {
            "en": "Republic of Korea",
            "ko": "대한민국",
            "uk": "Республіка Корея",
        },
        "targets": [
            {
                "key": "kr-unification",
                "name": "Minister of Unification of the Republic of Korea",
                "role": "Minister",
                "organisation": "Ministry of Unification",
                "translations": {
                    "ko": {
                        "name": "대한민국 통일부 장관",
                        "role": "장관",
                        "organisation": "통일부",
                    },
                    "uk": {
                        "name": "Міністр об’єднання Республіки Корея",
                        "role": "Міністр",
                        "organisation": "Міністерство об’єднання Республіки Корея",
                    },
                },
                "country": "KR",
                "language": "ko",
                "email": "unification@korea.example",
                "postal_address": (
                    "DEMO ADDRESS — not for real mail\n1 Example-ro\nSeoul, Republic of Korea"
                ),
            },
            {
                "key": "kr-mofa",
                "name": "Minister of Foreign Affairs of the Republic of Korea",
                "role": "Minister",
                "organisation": "Ministry of Foreign Affairs",
                "translations": {
                    "ko": {
                        "name": "대한민국 외교부 장관",
                        "role": "장관",
                        "organisation": "외교부",
                    },
                    "uk": {
                        "name": "Міністр закордонних справ Республіки Корея",
                        "role": "Міністр",
                        "organisation": "Міністерство закордонних справ Республіки Корея",
                    },
                },
                "country": "KR",
                "language": "ko",
                "email": "mofa@korea.example",
                "postal_address": (
                    "DEMO ADDRESS — not for real mail\n2 Example-ro\nSeoul, Republic of Korea"
                ),
            },
        ],
    },
    {
        "key": "eu",
        "names": {
            "en": "European Union",
            "ko": "유럽연합",
            "uk": "Європейський Союз",
        },
        "targets": [
            {
                "key": "eu-hr-vp",
                "name": "High Representative of the Union for Foreign Affairs and Security Policy",
                "role": "High Representative",
                "organisation": "European External Action Service",
                "translations": {
                    "ko": {
                        "name": "유럽연합 외교안보정책 고위대표",
                        "role": "고위대표",
                        "organisation": "유럽대외관계청",
                    },
                    "uk": {
                        "name": (
                            "Високий представник ЄС з питань закордонних справ і безпекової "
                            "політики"
                        ),
                        "role": "Високий представник",
                        "organisation": "Європейська служба зовнішніх дій",
                    },
                },
                "country": "BE",
                "language": "en",
                "email": "hr-vp@eu.example",
                "postal_address": (
                    "DEMO ADDRESS — not for real mail\n1 Rue de l'Exemple\nBrussels, Belgium"
                ),
            },
        ],
    },
]

# The supporter letter: the frame (Jinja, see README "Letter templates") around the supporter's
# own text, and the text they start from, which they are asked to put in their own words.
LETTER_TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "subject": "Please protect the two captured North Korean soldiers from forced return",
        "body": (
            "Dear {{ target.name }},\n\n"
            "{{ message }}\n\n"
            "Yours sincerely,\n"
            "{{ supporter.name }}\n"
            "{% if supporter.city %}{{ supporter.city }}, {% endif %}{{ supporter.country }}\n"
            "{{ date }}"
        ),
        "message": (
            "I am writing about the two North Korean soldiers captured by Ukrainian forces in "
            "the Kursk region in early 2025. Both have said they want to go to South Korea, and "
            "Seoul has said it would accept them.\n\n"
            "Soldiers sent back to North Korea risk enforced disappearance, torture, forced "
            "labour or execution, and their families may be punished too. The principle of "
            "non-refoulement forbids returning anyone to such a risk.\n\n"
            "I ask you to make sure they are not handed over against their will, and to agree "
            "their transfer to South Korea or a safe third country without delay."
        ),
    },
    "ko": {
        "subject": "포로가 된 북한군 병사 두 명의 강제 송환을 막아 주십시오",
        "body": (
            "{{ target.name }} 귀하,\n\n"
            "{{ message }}\n\n"
            "{{ supporter.name }} 드림\n"
            "{% if supporter.city %}{{ supporter.city }}, {% endif %}{{ supporter.country }}\n"
            "{{ date }}"
        ),
        "message": (
            "2025년 초 쿠르스크 지역에서 우크라이나군에 포로로 잡힌 북한군 병사 두 명에 관해 "
            "편지를 드립니다. 두 사람은 모두 한국으로 가기를 원한다고 밝혔고, 한국 정부는 이들을 "
            "받아들이겠다고 했습니다.\n\n"
            "북한으로 송환된 병사들은 강제 실종, 고문, 강제 노동, 처형의 위험에 처하며 가족까지 "
            "처벌받을 수 있습니다. 강제송환금지 원칙은 누구도 이러한 위험으로 돌려보내서는 안 "
            "된다고 말합니다.\n\n"
            "두 사람이 본인의 뜻에 반해 넘겨지지 않도록, 그리고 한국이나 안전한 제3국으로의 이송이 "
            "지체 없이 합의되도록 힘써 주시기를 요청합니다."
        ),
    },
    "uk": {
        "subject": (
            "Захистіть двох полонених північнокорейських солдатів від примусового повернення"
        ),
        "body": (
            "Шановний(а) {{ target.name }},\n\n"
            "{{ message }}\n\n"
            "З повагою,\n"
            "{{ supporter.name }}\n"
            "{% if supporter.city %}{{ supporter.city }}, {% endif %}{{ supporter.country }}\n"
            "{{ date }}"
        ),
        "message": (
            "Пишу щодо двох північнокорейських солдатів, яких українські сили взяли в полон у "
            "Курській області на початку 2025 року. Обидва сказали, що хочуть поїхати до "
            "Південної Кореї, і Сеул заявив, що готовий їх прийняти.\n\n"
            "Солдатам, повернутим до Північної Кореї, загрожують насильницьке зникнення, "
            "катування, примусова праця або страта, а їхні родини також можуть бути покарані. "
            "Принцип non-refoulement забороняє повертати будь-кого під таку загрозу.\n\n"
            "Прошу вас подбати, щоб їх не передали проти їхньої волі, і без зволікань погодити "
            "їхню передачу до Південної Кореї або безпечної третьої країни."
        ),
    },
}
