"""Explicit memory requests in English and Chinese, and the everyday sentences that must not look like one."""

from __future__ import annotations

import pytest

from thinking.memory_intents import ForgetIntent, RememberIntent, detect_memory_intent

REMEMBER = [
    ("remember that my name is Li Wei", "my name is Li Wei"),
    ("Please remember I'm allergic to peanuts.", "I'm allergic to peanuts"),
    ("Okay, remember that my daughter's birthday is June 3rd, please.", "my daughter's birthday is June 3rd"),
    ("Can you remember that my favourite colour is green?", "my favourite colour is green"),
    ("Don't forget that I'm vegetarian.", "I'm vegetarian"),
    ("Hi. Remember that my wife's name is Anna.", "my wife's name is Anna"),
    ("Keep in mind that I work night shifts.", "I work night shifts"),
    ("Remember, my email is li.wei@example.com.", "my email is li.wei@example.com"),
    ("记住我的生日是五月三日", "我的生日是五月三日"),
    ("请记住，我对花生过敏。", "我对花生过敏"),
    ("请记住…我住在上海", "我住在上海"),
    ("好的，帮我记一下我的车牌号是京A12345", "我的车牌号是京A12345"),
    ("你能记住我老婆叫王芳吗？", "我老婆叫王芳"),
    ("请记得我不吃辣", "我不吃辣"),
    ("請記住我的名字是李偉", "我的名字是李偉"),
]

FORGET = [
    ("forget that my wife's name is Anna", "my wife's name is Anna"),
    ("Forget my wife's name.", "my wife's name"),
    ("please forget about my address", "my address"),
    ("Could you forget my phone number, please?", "my phone number"),
    ("忘记我的生日", "我的生日"),
    ("忘掉我的电话号码吧", "我的电话号码"),
    ("请忘记我老婆的名字。", "我老婆的名字"),
    ("请把我老婆的名字忘掉", "我老婆的名字"),
    ("把我的地址删掉吧", "我的地址"),
]

FORGET_EVERYTHING = [
    "forget everything",
    "Forget everything you know about me.",
    "forget about me",
    "Could you forget all of it?",
    "forget everything I told you",
    "把我忘了吧",
    "忘记关于我的一切",
    "全部忘掉吧",
    "请忘记所有关于我的事情",
    "请把我告诉你的都忘掉",
]

NOT_REQUESTS = [
    "I can't remember where I parked",
    "do you remember me?",
    "Do you remember that my name is Li Wei?",
    "Remember when we went to Paris?",
    "remember me?",
    "What do you remember about me?",
    "I remember that my name is Li Wei",
    "Remember to call mom tomorrow",
    "I'll never forget that day.",
    "Forget it.",
    "never mind, forget it",
    "Forget that, tell me a joke.",
    "I forgot my keys",
    "Don't forget to buy milk",
    "forget",
    "How do I make my kids remember their homework?",
    "我忘记带钥匙了",
    "你还记得我吗？",
    "你记住了吗？",
    "我记不住这么多",
    "忘了带伞",
    "你忘了我的生日",
    "你忘记我了吗？",
    "别忘了带伞",
    "我一定会记住你的",
    "我的记忆力不好",
    "忘记",
    "记住这个",
    "",
]


@pytest.mark.parametrize("transcript,text", REMEMBER)
def test_remember_requests(transcript, text):
    assert detect_memory_intent(transcript) == RememberIntent(text)


@pytest.mark.parametrize("transcript,text", FORGET)
def test_forget_requests(transcript, text):
    assert detect_memory_intent(transcript) == ForgetIntent(text)


@pytest.mark.parametrize("transcript", FORGET_EVERYTHING)
def test_forget_everything_requests(transcript):
    assert detect_memory_intent(transcript) == ForgetIntent(everything=True)


@pytest.mark.parametrize("transcript", NOT_REQUESTS)
def test_mentions_of_memory_are_not_requests(transcript):
    assert detect_memory_intent(transcript) is None


def test_the_request_may_follow_other_sentences():
    transcript = "I had a long day. Anyway! Please remember that I start work at nine."
    assert detect_memory_intent(transcript) == RememberIntent("I start work at nine")
    assert detect_memory_intent("今天好累。请记住我明天九点上班。") == RememberIntent("我明天九点上班")
