"""A second document set, never used to choose the knowledge base's settings, with its questions.

The thresholds (``knowledge.min_score``, ``top_k``) and the language centering were tuned on
``kb_docs`` (a museum, a library, a mall). These documents are about a different place, a railway
station and what surrounds it, written for this check only, so the configured thresholds meet text
they have never seen. Do not tune anything on this set: if it stops passing, the thresholds
generalise less well than ``kb_docs`` suggests, which is the point of having it.
"""

from __future__ import annotations

from pathlib import Path

from tests.thinking.kb_questions import Question

HOLDOUT_DOCS = Path(__file__).resolve().parent / "kb_holdout_docs"

CENTRAL, HISTORY, BIKES = "central_station.md", "station_history.txt", "bike_hire.md"
HSR, SHUTTLE = "hsr_station_guide_zh.md", "airport_shuttle_zh.txt"

HOLDOUT_QUESTIONS: tuple[Question, ...] = (
    Question("What time does the ticket office open on Saturdays?", CENTRAL, "§Ticket office and ticket machines", "en"),
    Question("Where can I store my suitcase for the afternoon?", CENTRAL, "§Left luggage", "en"),
    Question("I left my umbrella on the train, where can I pick it up?", CENTRAL, "§Lost property", "en"),
    Question("I use a wheelchair, can someone help me get on the train?", CENTRAL,
             "§Assistance for travellers with reduced mobility", "en"),
    Question("Is there free wifi in the station?", CENTRAL, "§Wi-Fi and charging", "en"),
    Question("When did the station open?", HISTORY, "line 1", "en"),
    Question("How do I unlock a rental bike?", BIKES, "§How to rent a bike", "en"),
    Question("开车前多久停止检票？", HSR, "§进站与安检", "zh"),
    Question("充电宝能带上车吗？", HSR, "§随身行李", "zh"),
    Question("提前两天退票要收多少手续费？", HSR, "§退票与改签", "zh"),
    Question("车站里有给宝宝喂奶的地方吗？", HSR, "§母婴室和重点旅客服务", "zh"),
    Question("去机场的大巴几点发车？", SHUTTLE, "line 1", "zh"),
    Question("出站以后怎么坐地铁？", HSR, "§出租车和地铁", "zh"),
    Question("How much is the airport bus from the high-speed rail station?", SHUTTLE, "line 1", "en->zh"),
    Question("What is the fee for refunding a train ticket one day before departure?", HSR, "§退票与改签", "en->zh"),
    Question("Where is the baby care room at Nanhu station?", HSR, "§母婴室和重点旅客服务", "en->zh"),
    Question("中央车站的行李寄存柜多少钱？", CENTRAL, "§Left luggage", "zh->en"),
    Question("租一辆自行车一天多少钱？", BIKES, "§Prices", "zh->en"),
    Question("中央车站晚上几点关门？", CENTRAL, "§Station opening hours", "zh->en"),
)

HOLDOUT_OFF_TOPIC: tuple[str, ...] = (
    "How do I make a good risotto?",
    "Who wrote Pride and Prejudice?",
    "What's the best way to learn the guitar?",
    "How do I renew my passport?",
    "红烧肉怎么做？",
    "明天会下雨吗？",
    "怎样才能睡得更好？",
)
"""Questions nothing in kb_holdout_docs answers (the passport one is travel-adjacent on purpose)."""
