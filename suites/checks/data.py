"""Data: the real, offline, verified datasets, and both frameworks' loaders agreeing on them."""

import collections

import numpy as np

from twinbench.fixtures import data as D
from twinbench.fixtures import expected as E



# -- MNIST ---------------------------------------------------------------------------------
def check_idx_sha256(split):
    raw = D.ensure_mnist_idx()
    prefix = "train" if split == "train" else "t10k"
    for kind in ("images-idx3", "labels-idx1"):
        name = f"{prefix}-{kind}-ubyte"
        got = D.sha256_file(raw / name)
        assert got == E.MNIST_IDX_SHA256[name], f"{raw / name}: sha256 {got}, published {E.MNIST_IDX_SHA256[name]}"


def check_torchvision_equals_tfds(split):
    """Both loaders yield the same multiset of (uint8 image, label) examples."""
    tv_x, tv_y = D.mnist_torchvision(split)
    tf_x, tf_y = D.mnist_tfds(split)
    n = E.MNIST_SPLIT_SIZES[split]
    assert tv_x.shape == tf_x.shape == (n, 28, 28), f"{split}: torchvision {tv_x.shape}, tfds {tf_x.shape}, expected ({n}, 28, 28)"
    assert tv_x.dtype == tf_x.dtype == np.uint8, f"{split}: dtypes torchvision {tv_x.dtype}, tfds {tf_x.dtype}"
    tv, tf = collections.Counter(D.example_hashes(tv_x, tv_y)), collections.Counter(D.example_hashes(tf_x, tf_y))
    only_tv, only_tf = tv - tf, tf - tv
    assert not only_tv and not only_tf, (
        f"{split}: {sum(only_tv.values())} examples only in torchvision, {sum(only_tf.values())} only in tfds")


def check_torchvision_equals_idx_order(split):
    """torchvision keeps the official IDX order, example by example."""
    tv_x, tv_y = D.mnist_torchvision(split)
    idx_x, idx_y = D.mnist_idx_arrays(split)
    assert np.array_equal(tv_x, idx_x) and np.array_equal(tv_y, idx_y), f"{split}: torchvision differs from the IDX files"


def check_class_counts(split):
    for loader in (D.mnist_torchvision, D.mnist_tfds):
        _, y = loader(split)
        got = tuple(int(c) for c in np.bincount(y, minlength=10))
        want = E.MNIST_CLASS_COUNTS[split]
        diff = {d: (g, w) for d, (g, w) in enumerate(zip(got, want)) if g != w}
        assert not diff, f"{split} via {loader.__name__}: class counts (got, official) differ for digits {diff}"


def check_normalisation_constants(split):
    """The recipe's (0.1307, 0.3081) are the train pixels' mean and std, to 4 places."""
    x, _ = D.mnist_idx_arrays(split)
    x = x.astype(np.float64) / 255.0
    got = (round(float(x.mean()), 4), round(float(x.std()), 4))
    assert got == E.MNIST_NORMALISATION, f"{split}: mean/std {got}, recipe uses {E.MNIST_NORMALISATION}"


# -- Tweets --------------------------------------------------------------------------------
def check_corpus_counts():
    rows = D.tweets_rows()
    assert len(rows) == E.TWEETS_ROWS, f"{len(rows)} rows, expected {E.TWEETS_ROWS}"
    counts = dict(collections.Counter(s for s, _ in rows))
    assert counts == E.TWEETS_LABEL_COUNTS, f"label counts {counts}, expected {E.TWEETS_LABEL_COUNTS}"


def check_binary_dedupe():
    """Deduplicated by normalised text: each occurs once, and each rule removed what it did."""
    row_ids, labels, texts, removed = D.binary_rows()
    got = {"total": len(labels), "positive": int(labels.sum())}
    assert got == E.TWEETS_BINARY, f"deduplicated binary task {got}, expected {E.TWEETS_BINARY}"
    normalised = [D.normalised_text(t) for t in texts]
    assert len(set(normalised)) == len(normalised), f"{len(normalised) - len(set(normalised))} repeated normalised texts"
    assert "" not in normalised, "an empty normalised text (an all-padding row) is kept"
    assert np.all(np.diff(row_ids) > 0), "row ids are not in file order"
    rows = D.tweets_rows()
    assert all(rows[i][1] == t and D.LABELS[rows[i][0]] == lab for i, lab, t in zip(row_ids, labels, texts)), \
        "row ids do not index tweets_rows()"
    removed = {**removed, "test_seen_token_row": D.tweets()["removed"]["test_seen_token_row"]}
    assert removed == E.TWEETS_REMOVED, f"rows removed {removed}, expected {E.TWEETS_REMOVED}"
    binary = sum(s in D.LABELS for s, _ in rows)
    kept = binary - removed["empty"] - removed["label_conflict"] - removed["duplicate"]
    assert kept == len(labels), f"{binary} binary rows less {removed} is {kept}, not {len(labels)}"


def check_binary_split():
    t = D.tweets()
    total = len(t["y_train"]) + len(t["y_test"]) + t["removed"]["test_seen_token_row"]
    assert total == E.TWEETS_BINARY["total"], \
        f"train + test + dropped test rows = {total}, deduplicated binary task has {E.TWEETS_BINARY['total']}"
    for part in ("train", "test"):
        got = {"total": len(t[f"y_{part}"]), "positive": int(t[f"y_{part}"].sum())}
        assert got == E.TWEETS_SPLIT[part], f"{part} split {got}, expected {E.TWEETS_SPLIT[part]}"
    assert not set(t["train_ids"]) & set(t["test_ids"]), "train and test share tweets"
    got = D.ids_hash(t["test_ids"])
    assert got == E.TWEETS_TEST_IDS_SHA256, f"test ids hash {got}, recorded {E.TWEETS_TEST_IDS_SHA256}"


def check_no_normalised_text_in_both_splits():
    rows = D.tweets_rows()
    train = {D.normalised_text(rows[i][1]) for i in D.tweets()["train_ids"]}
    leaked = [int(i) for i in D.tweets()["test_ids"] if D.normalised_text(rows[i][1]) in train]
    assert not leaked, f"{len(leaked)} test tweets have a normalised text that is in train, e.g. csv rows {leaked[:5]}"


def check_no_token_row_in_both_splits():
    """No test row's 42 ids equal a train row's (texts differing only in out-of-vocabulary words)."""
    t = D.tweets()
    train = {row.tobytes() for row in t["x_train"]}
    leaked = [int(i) for i, row in zip(t["test_ids"], t["x_test"]) if row.tobytes() in train]
    assert not leaked, f"{len(leaked)} test rows are a train row id for id, e.g. csv rows {leaked[:5]}"


def check_token_arrays():
    t = D.tweets()
    for part in ("train", "test"):
        x = t[f"x_{part}"]
        assert x.dtype == np.int32 and x.shape == (len(t[f"y_{part}"]), E.TWEETS_SEQ_LEN), f"{part}: {x.dtype} {x.shape}"
        assert 0 <= x.min() and x.max() < E.TWEETS_VOCAB_SIZE, f"{part}: ids in [{x.min()}, {x.max()}]"
    vocab = t["tokenizer"].index
    assert len(vocab) == E.TWEETS_VOCAB_SIZE - 2, f"{len(vocab)} vocabulary words, expected {E.TWEETS_VOCAB_SIZE - 2}"
    assert sorted(vocab.values()) == list(range(2, E.TWEETS_VOCAB_SIZE)), "vocabulary ids are not 2..19999"
    # post-padding: once a row has padding, the rest of the row is padding
    x = t["x_train"]
    pad = x == E.TWEETS_PAD_ID
    assert np.array_equal(pad, np.cumsum(pad, axis=1) > 0), "padding is not all at the end of each row"


def check_tokenizer_rules():
    assert D.tokenize("I don't trust #driverless cars_Ñ_.no") == ["i", "don't", "trust", "driverless", "cars", "no"]
    tok = D.Tokenizer(["b a a", "c"], vocab_size=4, seq_len=3)
    assert tok.index == {"a": 2, "b": 3}, tok.index
    assert tok.encode(["a c z", "b b b b"]).tolist() == [[2, 1, 1], [3, 3, 3]]
