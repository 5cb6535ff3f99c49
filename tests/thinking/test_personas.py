"""Persona files: the shipped ones load and render; bad files and requests give clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinking.personas import Persona, PersonaError, PersonaLibrary, read_persona

SHIPPED = Path(__file__).resolve().parents[2] / "personas"


def test_the_shipped_personas_load_render_and_speak_their_language():
    library = PersonaLibrary.from_directory(SHIPPED)
    assert {"museum_guide", "library_guide_zh"} <= set(library.ids())
    guide = library.get("museum_guide")
    instructions, greeting = guide.render()
    assert "the Harbour Museum" in instructions and "{{" not in instructions
    assert "no markdown" in instructions and greeting.startswith("Hello, I'm Ada")
    zh = library.get("library_guide_zh", "1")
    instructions, greeting = zh.render({"library": "城西图书馆"})
    assert "城西图书馆" in instructions and "城西图书馆" in greeting and "不要列表" in instructions
    assert zh.recognition_language() == "zh" and guide.recognition_language() == "en"


def test_versions_are_kept_apart_and_the_newest_is_the_default(tmp_path):
    for version, role in ((1, "old role"), (2, "new role")):
        (tmp_path / f"p{version}.toml").write_text(
            f'id = "clerk"\nversion = {version}\nname = "Clerk"\nlanguage = "en"\ninstructions = "{role}"\n')
    library = PersonaLibrary.from_directory(tmp_path)
    assert library.get("clerk").instructions == "new role"
    assert library.get("clerk", 1).instructions == "old role"
    with pytest.raises(PersonaError, match="has no version '3'"):
        library.get("clerk", "3")
    with pytest.raises(PersonaError, match="unknown persona 'nobody'"):
        library.get("nobody")


@pytest.mark.parametrize("body, message", [
    ('id = "x"\nversion = 1\nname = "X"\nlanguage = "fr"\ninstructions = "i"\n', "language must be"),
    ('id = "x"\nversion = 1\nname = "X"\ninstructions = "i"\n', "missing \\['language'\\]"),
    ('id = "X Y"\nversion = 1\nname = "X"\nlanguage = "en"\ninstructions = "i"\n', "id must be"),
    ('id = "x"\nversion = 1\nname = "X"\nlanguage = "en"\ninstructions = "i"\ncolour = "red"\n', "unknown fields"),
    ('id = "x"\nversion = 1\nname = \n', "Invalid"),
    ('id = "x"\nversion = 1\nname = "X"\nlanguage = "en"\ninstructions = "i"\nrecord = "video"\n', "record must be"),
    ('id = "x"\nversion = 1\nname = "X"\nlanguage = "en"\ninstructions = "i"\nrecord = true\n', "record must be"),
])
def test_malformed_persona_files_are_refused_with_the_reason(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(PersonaError, match=message):
        read_persona(path)


def test_a_missing_variable_is_an_error_not_a_literal_placeholder():
    persona = Persona(id="p", version=1, name="P", language="en", instructions="Serve {{shop}}.")
    with pytest.raises(PersonaError, match="needs the variable 'shop'"):
        persona.render()
    assert persona.render({"shop": "the bakery"})[0].startswith("Serve the bakery.")


def test_a_persona_may_set_its_own_recording_mode_else_the_servers_applies(tmp_path):
    (tmp_path / "kiosk.toml").write_text('id = "kiosk"\nversion = 1\nname = "K"\nlanguage = "en"\n'
                                         'instructions = "i"\nrecord = "audio"\n')
    (tmp_path / "plain.toml").write_text('id = "plain"\nversion = 1\nname = "P"\nlanguage = "en"\ninstructions = "i"\n')
    library = PersonaLibrary.from_directory(tmp_path)
    assert library.get("kiosk").record == "audio"
    assert library.get("plain").record is None
