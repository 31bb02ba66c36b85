import pytest

from lsml.label_config import LabelConfigError, get_first_tag_occurence, parse_config

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
