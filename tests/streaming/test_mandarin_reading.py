import pytest

from streaming.mandarin_reading import integer_reading, mandarin_reading


@pytest.mark.parametrize("text, said", [
    ("寄存处在2楼", "寄存处在二楼"),
    ("9:30开门，17:00闭馆", "九点半开门，十七点闭馆"),
    ("8:05出发", "八点零五分出发"),
    ("下午2:00开始", "下午两点开始"),
    ("2024年3月15日", "二零二四年三月十五日"),
    ("成人票60元", "成人票六十元"),
    ("一杯¥28", "一杯二十八元"),
    ("$20", "二十美元"),
    ("打85%的折扣", "打百分之八十五的折扣"),
    ("气温-3度", "气温负三度"),
    ("圆周率3.14", "圆周率三点一四"),
    ("电话13800138000", "电话幺三八零零幺三八零零零"),
    ("区号0571", "区号零五七幺"),
    ("2个人", "两个人"),
    ("第2章", "第二章"),
    ("接待了12500位游客", "接待了一万两千五百位游客"),
    ("没有数字", "没有数字"),
])
def test_numbers_are_written_as_they_are_said(text, said):
    assert mandarin_reading(text) == said


@pytest.mark.parametrize("n, said", [
    (0, "零"), (10, "十"), (12, "十二"), (110, "一百一十"), (1005, "一千零五"), (2000, "两千"),
    (20500, "两万零五百"), (100000, "十万"), (-7, "负七"),
])
def test_integers(n, said):
    assert integer_reading(n) == said
