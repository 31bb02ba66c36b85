import pytest

from lsml.label_config import (
    MAX_CHARS,
    MAX_DEPTH,
    MAX_INDEX_FLAGS,
    MAX_TAGS,
    LabelConfigError,
    LabelConfigTooLarge,
    get_first_tag_occurence,
    parse_config,
)

pytestmark = pytest.mark.unit

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Text name="text" value="$text"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Car" predicted_values="car,truck"/>
    <Label value="Airplane" alias="Plane"/>
  </RectangleLabels>
  <Choices name="sentiment" toName="text">
    <View><Choice value="Positive"/></View>
    <Choice value="Negative"/>
  </Choices>
  <TextArea name="comment" toName="text,image"/>
</View>"""


def test_parse_config_has_the_reference_shape():
    parsed = parse_config(CONFIG)
    assert set(parsed) == {"label", "sentiment", "comment"}
    assert parsed["label"]["type"] == "RectangleLabels"
    assert parsed["label"]["to_name"] == ["image"]
    assert parsed["label"]["inputs"] == [{"type": "Image", "valueType": None, "value": "image"}]
    assert parsed["label"]["labels"] == ["Car", "Plane"]
    assert parsed["label"]["labels_attrs"]["Car"]["predicted_values"] == "car,truck"
    assert parsed["sentiment"]["labels"] == ["Positive", "Negative"]  # nested Views are looked through
    assert [i["value"] for i in parsed["comment"]["inputs"]] == ["text", "image"]
    assert parsed["comment"]["labels"] == []


def test_empty_config_parses_to_nothing():
    assert parse_config("") == {} and parse_config(None) == {}


def test_broken_xml_names_the_parse_error():
    with pytest.raises(LabelConfigError, match="not valid XML"):
        parse_config("<View><Text name='t' value='$t'></View>")


def test_first_tag_occurence_finds_control_object_and_value():
    parsed = parse_config(CONFIG)
    assert get_first_tag_occurence(parsed, "Choices", "Text") == ("sentiment", "text", "text")
    assert get_first_tag_occurence(parsed, ("RectangleLabels",), "image") == ("label", "image", "image")
    assert get_first_tag_occurence(parsed, "TextArea", "Image") == ("comment", "image", "image")
    with pytest.raises(ValueError):
        get_first_tag_occurence(parsed, "Labels", "Audio")
    with pytest.raises(ValueError):
        get_first_tag_occurence(parsed, "Choices", "Text", name_filter=lambda n: n != "sentiment")


def test_label_interface_stand_in():
    from lsml.label_config import LabelInterface

    li = LabelInterface(CONFIG)
    assert [c.name for c in li.controls] == ["label", "sentiment", "comment"]
    control = li.get_control("label")
    assert control.tag == "RectangleLabels" and control.to_name == ["image"]
    assert control.labels == ["Car", "Plane"] and "predicted_values" in control.labels_attrs["Car"]
    assert li.get_first_tag_occurence("Choices", "Text") == ("sentiment", "text", "text")
    with pytest.raises(KeyError):
        li.get_control("nope")
    with pytest.raises(ValueError):
        li.get_control()


def _repeaters(n: int) -> str:
    """n Repeater-style controls, each after a tag with the same indexFlag: quadratic for a parser that
    matches every control against every earlier indexFlag, however few distinct flags there are."""
    items = "".join(
        f'<View indexFlag="{{{{idx}}}}"><Text name="t{i}_{{{{idx}}}}" value="$t{i}"/>'
        f'<Choices name="c{i}" toName="t{i}_{{{{idx}}}}"><Choice value="a"/></Choices></View>'
        for i in range(n)
    )
    return f"<View>{items}</View>"


def test_repeater_controls_each_get_their_index_flag():
    """The config shape whose parsing cost test_label_config_cost.py counts, parsed right."""
    parsed = parse_config(_repeaters(3))
    assert parsed["c2"]["regex"] == {"{{idx}}": ".*"} and parsed["c2"]["labels"] == ["a"]


def test_index_flags_match_within_one_to_name_in_order_of_appearance():
    parsed = parse_config(
        '<View><View indexFlag="{{j}}"/><View indexFlag="{{i}}"/><View indexFlag="{{j}}"/>'
        '<Labels name="l" toName="a{{i}},b{{j}}"/><Labels name="m" toName="a{,{i}}"/></View>'
    )
    assert list(parsed["l"]["regex"]) == ["{{j}}", "{{i}}"]
    assert "regex" not in parsed["m"], "a flag never matches across two to_names"


def test_labels_belong_to_the_nearest_control_above_them():
    parsed = parse_config(
        '<View><Choices name="outer" toName="t"><View><Choices name="inner" toName="t">'
        '<View><Choice value="deep"/></View></Choices><Choice value="mid"/></View></Choices>'
        '<Choice value="orphan"/></View>'
    )
    assert parsed["inner"]["labels"] == ["deep"] and parsed["outer"]["labels"] == ["mid"]


@pytest.mark.parametrize(
    ("config", "what"),
    [
        ("<View>" + " " * MAX_CHARS + "</View>", f"more than {MAX_CHARS} characters"),
        ("<View>" + "<Choice value='x'/>" * MAX_TAGS + "</View>", f"more than {MAX_TAGS} tags"),
        ("<View>" * (MAX_DEPTH + 1) + "</View>" * (MAX_DEPTH + 1), f"more than {MAX_DEPTH} levels of nesting"),
        (
            "<View>" + "".join(f"<View indexFlag='f{i}'/>" for i in range(MAX_INDEX_FLAGS + 1)) + "</View>",
            f"more than {MAX_INDEX_FLAGS} distinct indexFlag values",
        ),
    ],
    ids=["characters", "tags", "depth", "index_flags"],
)
def test_a_config_past_a_limit_is_refused_naming_it(config, what):
    with pytest.raises(LabelConfigTooLarge, match=what):
        parse_config(config)


def test_a_config_at_every_limit_parses():
    at_limits = (
        "<View>" * (MAX_DEPTH - 2)  # the Choice tags are the 64th level
        + "".join(f"<View indexFlag='f{i}'/>" for i in range(MAX_INDEX_FLAGS))
        + "<Choices name='c' toName='t'>"
        + "<Choice value='x'/>" * (MAX_TAGS - MAX_DEPTH - MAX_INDEX_FLAGS)
        + "</Choices>"
        + "</View>" * (MAX_DEPTH - 2)
    )
    assert len(at_limits) <= MAX_CHARS
    assert parse_config(at_limits)["c"]["labels"] == ["x"]


@pytest.mark.parametrize("route", ["/setup", "/webhook", "/predict"])
def test_setup_and_webhook_refuse_a_config_past_a_limit_with_a_400_naming_it(serve, route):
    from tests.fixtures.sample_models import CountingModel

    _, client = serve(CountingModel)
    config = "<View>" + "<Choice value='x'/>" * (MAX_TAGS + 1) + "</View>"
    body = {
        "/setup": {"project": "1", "schema": config},
        "/webhook": {"action": "START_TRAINING", "project": {"id": 1, "label_config": config}},
        "/predict": {"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "1", "label_config": config},
    }[route]
    r = client.post(route, json=body)
    assert r.status_code == 400, r.json
    assert r.json["error"] == "label_config_too_large"
    assert f"more than {MAX_TAGS} tags" in r.json["message"]


def test_the_parse_cache_is_bounded_by_the_configs_total_size():
    from lsml.label_config import _parse_cached, parse_config_cached

    _parse_cached.cache_clear()
    big = MAX_CHARS - 100
    for i in range(20):  # 20 distinct configs of ~1 MiB, as requests may send
        config = f'<View><Text name="t{i}" value="$t"/>' + " " * (big - 60) + "</View>"
        assert parse_config_cached(config) == parse_config(config)
        assert _parse_cached.chars <= _parse_cached.max_chars
    assert len(_parse_cached) == _parse_cached.max_chars // big
    small = "<View><Text name='t' value='$t'/></View>"
    assert parse_config_cached(small) is parse_config_cached(small), "a cached parse is reused"
