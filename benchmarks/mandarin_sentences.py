"""Mandarin sentences an assistant says, for measuring its Mandarin voice: plain museum, library and
travel talk, and the hard parts of replies: numbers, dates, times, prices, places and English
words inside Chinese. Written for this project (no source to credit)."""

from __future__ import annotations

MANDARIN_SENTENCES: tuple[str, ...] = (
    # plain talk
    "欢迎来到市立博物馆，请问有什么可以帮您？",
    "如果需要帮助，请随时告诉我。",
    "洗手间在展厅的另一边，走到尽头右转就到了。",
    "图书馆里请保持安静，谢谢您的配合。",
    "这幅画是清朝的作品，已经有三百多年的历史了。",
    "今天外面下雨，出门记得带伞。",
    "您可以在服务台借到轮椅和婴儿车。",
    "我们的讲解员会在门口等您。",
    # numbers, dates, times
    "寄存处在2楼，电梯就在您的左手边。",
    "博物馆每天9:30开门，17:00闭馆。",
    "下一场讲座在2024年3月15日下午2:00开始。",
    "这本书一共有356页，分为12章。",
    "展览将持续到10月31日。",
    "我们一共接待了12500位游客。",
    "现在的气温是-3度，请注意保暖。",
    "这次活动有2个环节，大约需要45分钟。",
    "第3展厅正在布展，暂时不开放。",
    "咨询电话是13800138000，工作日都有人接听。",
    # prices and percentages
    "成人门票是60元，学生半价。",
    "一杯咖啡的价格是¥28。",
    "会员购书可以享受85%的折扣。",
    "停车费每小时5元，超过3小时按20元计算。",
    # places
    "从北京坐高铁到上海大约需要4个半小时。",
    "杭州的西湖在春天特别美丽。",
    "地铁2号线可以直接到达南京路。",
    "广州塔的观景台在488米的高度。",
    # English words inside Chinese
    "您可以连接我们的Wi-Fi，密码贴在前台。",
    "请打开iPhone上的App扫描二维码。",
    "OK，我马上为您查询。",
    "这里支持USB充电，插座在座位下面。",
    "请把您的email地址告诉我，我会把门票发给您。",
    "这台电脑用的是Windows系统。",
)
