import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_vllmbench.results import markers

NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True)
# hand text: any lines, including ones that quote marker text mid-line, but no line that is itself a marker
PIECES = st.sampled_from(
    [
        "",
        "plain",
        "`<!-- /vllmbench:hand-written decisions -->`",
        markers.GENERATED,
        "x <!-- vllmbench:hand-written a -->",
    ]
)
LINE = st.builds(
    lambda a, b: a + b,
    PIECES,
    st.text(st.characters(exclude_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), max_size=30),
).filter(lambda line: not line.lstrip().startswith("<!--"))
BODY = st.lists(LINE, max_size=6).map(lambda lines: "".join(line + "\n" for line in lines))


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(NAMES, BODY, max_size=4), BODY)
def test_hand_text_survives_byte_for_byte(bodies, between):
    text = markers.GENERATED + " -->\n" + between + "\n".join(markers.section(n, b) for n, b in bodies.items()) + "\n"
    assert markers.is_generated(text)
    assert markers.hand_written_sections(text) == bodies


@settings(max_examples=50, deadline=None)
@given(BODY)
def test_marker_text_that_is_not_a_line_of_its_own_never_makes_a_file_generated(text):
    assert markers.is_generated(text) == any(line.strip().startswith(markers.GENERATED) for line in text.splitlines())
    assert not markers.is_generated(text.replace(markers.GENERATED, "see " + markers.GENERATED))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (markers.opening("a") + "\n", "line 1: section 'a' is never closed"),
        (markers.closing("a") + "\n", "line 1: closes section 'a', expected no closing marker"),
        (markers.opening("a") + "\n" + markers.opening("b") + "\n", "line 2: section 'b' opens inside 'a'"),
        ("<!-- vllmbench:handwritten a -->\n", "line 1: malformed hand-written marker"),
        (markers.section("a", "") + "\n" + markers.section("a", "") + "\n", "line 3: section 'a' appears twice"),
    ],
)
def test_markers_that_do_not_pair_up_name_the_line(text, message):
    with pytest.raises(markers.MarkerError, match=message):
        markers.hand_written_sections(text)
