"""Questions a kiosk visitor might ask about tests/thinking/kb_docs, each with the passage that answers it.

Shared by tests/thinking/test_knowledge_base.py (retrieval accuracy) and
benchmarks/kb_latency.py (search latency). Several questions are deliberately
ambiguous across documents ("wifi password": the museum, the library and an
office all have a network section; "lost property": three documents), as at a
real kiosk whose documents overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from thinking.knowledge_base import Passage

KB_DOCS = Path(__file__).resolve().parent / "kb_docs"


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    source: str
    """File name of the answering document."""
    locator: str
    language: str
    """``en``, ``zh``, or ``en->zh`` / ``zh->en`` for a question in one language about a document in the other."""

    def answered_by(self, passage: Passage) -> bool:
        return Path(passage.source).name == self.source and passage.locator == self.locator


MUSEUM, HISTORY, OFFICE = "museum_handbook.md", "museum_history.txt", "office_it_policy.md"
LIBRARY, MALL = "library_guide_zh.md", "mall_guide_zh.md"

QUESTIONS: tuple[Question, ...] = (
    Question("What time does the museum open on Thursdays?", MUSEUM, "§Opening hours", "en"),
    Question("Is the museum open on Mondays?", MUSEUM, "§Opening hours", "en"),
    Question("How much is an adult ticket?", MUSEUM, "§Tickets and prices", "en"),
    Question("Do children have to pay to get in?", MUSEUM, "§Tickets and prices", "en"),
    Question("What's the wifi password?", MUSEUM, "§Wi-Fi", "en"),
    Question("I left my scarf here yesterday, how do I get it back?", MUSEUM, "§Lost and found", "en"),
    Question("Where can I leave my coat?", MUSEUM, "§Cloakroom and lockers", "en"),
    Question("Can I borrow a wheelchair?", MUSEUM, "§Accessibility", "en"),
    Question("When do the guided tours start?", MUSEUM, "§Guided tours", "en"),
    Question("Is there somewhere to get a coffee?", MUSEUM, "§Café and picnics", "en"),
    Question("Am I allowed to take pictures?", MUSEUM, "§Photography", "en"),
    Question("Where can I park my car?", MUSEUM, "§Getting here and parking", "en"),
    Question("Which tram goes to the museum?", MUSEUM, "§Getting here and parking", "en"),
    Question("When was the museum founded?", HISTORY, "line 1", "en"),
    Question("How do visitors get on the network at the Northwind office?", OFFICE, "§Guest network", "en"),
    Question("How long does banana bread bake?", "banana_bread.md", "§Method", "en"),
    Question("What tyre pressure does a road bike need?", "bicycle_care.txt", "line 1", "en"),
    Question("图书馆几点开门？", LIBRARY, "§开放时间", "zh"),
    Question("周一图书馆开放吗？", LIBRARY, "§开放时间", "zh"),
    Question("一次最多能借几本书？", LIBRARY, "§借阅规则", "zh"),
    Question("书到期了还能续借吗？", LIBRARY, "§借阅规则", "zh"),
    Question("书还晚了要交多少钱？", LIBRARY, "§逾期与赔偿", "zh"),
    Question("图书馆的无线网络怎么连接？", LIBRARY, "§无线网络", "zh"),
    Question("怎么预约自习室的座位？", LIBRARY, "§自习室预约", "zh"),
    Question("彩色打印多少钱一页？", LIBRARY, "§打印与复印", "zh"),
    Question("办读者证需要带什么？", LIBRARY, "§办理读者证", "zh"),
    Question("周末有给小朋友讲故事的活动吗？", LIBRARY, "§儿童阅览室", "zh"),
    Question("商场停车怎么收费？", MALL, "§停车", "zh"),
    Question("商场晚上几点关门？", MALL, "§营业时间", "zh"),
    Question("买的衣服不合适可以退吗？", MALL, "§退换货", "zh"),
    Question("积分可以换现金吗？", MALL, "§会员积分", "zh"),
    Question("哪里可以给宝宝换尿布？", MALL, "§母婴室和洗手间", "zh"),
    Question("泡绿茶用多少度的水？", "tea_zh.txt", "line 1", "zh"),
    Question("How many books can I borrow from the library at once?", LIBRARY, "§借阅规则", "en->zh"),
    Question("What is the library's wifi network called?", LIBRARY, "§无线网络", "en->zh"),
    Question("How much does parking cost at the shopping mall?", MALL, "§停车", "en->zh"),
    Question("What is the fine for returning a library book late?", LIBRARY, "§逾期与赔偿", "en->zh"),
    Question("博物馆的门票多少钱？", MUSEUM, "§Tickets and prices", "zh->en"),
    Question("博物馆的无线网络密码是什么？", MUSEUM, "§Wi-Fi", "zh->en"),
    Question("博物馆星期一开门吗？", MUSEUM, "§Opening hours", "zh->en"),
    Question("博物馆里可以拍照吗？", MUSEUM, "§Photography", "zh->en"),
)

OFF_TOPIC: tuple[str, ...] = (
    "Who won the football World Cup in 2018?",
    "What is the capital of Australia?",
    "Can you recommend a good science fiction novel?",
    "今天天气怎么样？",
    "如何训练小狗听话？",
    "推荐一部好看的电影。",
)
"""Questions nothing in kb_docs answers."""
