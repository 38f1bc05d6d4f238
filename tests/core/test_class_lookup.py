"""Class names as real labels files have them: repeated names, and WordNet ids before the names.

ImageNet's labels name two classes "crane" (the bird and the machine) and
two "maillot"; Caffe's synset_words.txt starts each line with the id that
ImageNet folders are named by. Both files were refused or matched nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.folders import load_dataset, match_classes
from squeezestudio.core.errors import DataError
from squeezestudio.core.io.loading import load_model
from squeezestudio.core.model.labels import ClassLookup
from third_party_fixtures import linked_folder

SYNSET_WORDS = ["n01440764 tench, Tinca tinca", "n02012849 crane", "n03126707 crane", "n07714571 head cabbage"]


def _folder(root, names):
    for i, name in enumerate(names):
        (root / name).mkdir(parents=True)
        Image.fromarray(np.full((12, 12, 3), 40 * i, np.uint8)).save(root / name / "a.png")
    return root


def test_lookup_by_name_by_id_and_refusing_only_an_ambiguous_name():
    lookup = ClassLookup(SYNSET_WORDS)
    assert lookup.index("n03126707") == 2 and lookup.index("n01440764 tench, Tinca tinca") == 0
    assert "n07714571" in lookup and "n09999999" not in lookup and "tench" not in lookup
    plain = ClassLookup(["tench", "crane", "crane", "head cabbage"])
    assert plain.index("head cabbage") == 3
    with pytest.raises(DataError, match=r"'crane' belongs to 2 of the model's classes \(1, 2\)"):
        plain.index("crane")


def test_a_model_with_repeated_class_names_loads(softmax_set):
    names = ["crane", "crane", "tench", "maillot", "maillot"]  # softmax_set's model has 5 outputs
    handle = load_model(softmax_set.model, class_names=names, registry=default_registry())
    assert handle.class_names == names


def test_folders_named_by_wordnet_id_match_a_synset_words_file(tmp_path):
    spec = PreprocessSpec(channels=3, height=8, width=8, mean=(0.5,) * 3, std=(0.5,) * 3)
    data = load_dataset(str(_folder(tmp_path / "val", ["n03126707", "n07714571"])), spec)
    matched = match_classes(data, SYNSET_WORDS)
    assert sorted(matched.labels.tolist()) == [2, 3]


def test_a_folder_named_by_a_repeated_class_name_is_refused_in_one_sentence(tmp_path):
    spec = PreprocessSpec(channels=3, height=8, width=8, mean=(0.5,) * 3, std=(0.5,) * 3)
    data = load_dataset(str(_folder(tmp_path / "val", ["crane", "tench"])), spec)
    with pytest.raises(DataError, match="name that folder or label by its class index"):
        match_classes(data, ["tench", "crane", "crane", "head cabbage"])
    csv = tmp_path / "list.csv"
    csv.write_text("val/tench/a.png,tench\nval/crane/a.png,2\n")  # an index is never ambiguous
    listed = load_dataset(str(csv), spec, class_names=["tench", "crane", "crane", "head cabbage"])
    assert listed.labels.tolist() == [0, 2]
    csv.write_text("val/crane/a.png,crane\n")
    with pytest.raises(DataError, match="list.csv line 1: the class name 'crane' belongs to 2"):
        load_dataset(str(csv), spec, class_names=["tench", "crane", "crane", "head cabbage"])


def test_the_app_reads_a_folder_made_of_links(tmp_path, nhwc_set):
    """A folder picked in the window is the user's choice: its links are followed (the CLI asks for a flag)."""
    from squeezestudio.core.session.studio_session import StudioSession

    linked_folder(nhwc_set, tmp_path / "links")
    session = StudioSession(registry=default_registry())
    handle = session.load_model_file(str(nhwc_set.model), preprocess={"resize": 40, "mean": 0.5, "std": 0.5})
    session.set_model(handle, str(nhwc_set.model))
    data = session.open_data(str(tmp_path / "links"))
    assert len(data) == len(nhwc_set.paths) and not data.skipped
