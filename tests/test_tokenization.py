import pandas as pd
import pytest

from crossling import base, tokenization


@pytest.fixture(scope="module")
def tokenizer():
    texts = ["good film today", "bad film today", "a film"] * 20 + ["良い映画です", "悪い映画でした"] * 20
    return base.train_tokenizer(texts, vocab_size=120)


def test_measures_per_word_and_per_character(tokenizer):
    en = tokenization.diagnostics(tokenizer, ["good film", "bad film today"], "word", max_length=32)
    ids = [len(tokenizer(t)["input_ids"]) for t in ["good film", "bad film today"]]
    assert en["unit"] == "word"
    assert en["tokens_per_unit"] == pytest.approx((sum(ids) - 4) / 5, abs=1e-4)
    assert en["mean_tokens"] == pytest.approx(sum(ids) / 2)
    ja = tokenization.diagnostics(tokenizer, ["良い映画です"], "character", max_length=32)
    assert ja["unit"] == "character"
    assert ja["tokens_per_unit"] == pytest.approx((len(tokenizer("良い映画です")["input_ids"]) - 2) / 6, abs=1e-4)


def test_unknown_and_truncated_shares(tokenizer):
    d = tokenization.diagnostics(tokenizer, ["good zzz", "good film today good film today"], "word", max_length=5)
    assert d["unk_rate"] > 0  # 'z' never occurs in the training texts
    assert d["truncated_share"] == 0.5


def test_report_is_flat_per_language(tokenizer):
    frame = pd.DataFrame({"language": ["english", "japanese"], "text": ["good film", "良い映画"]})
    metrics, rows = tokenization.tokenization_report(tokenizer, {"pool": frame, "test": frame},
                                                     ("english", "japanese"), 32)
    assert set(metrics) == {"english", "japanese"}
    assert {"pool_tokens_per_unit", "test_unk_rate", "test_truncated_share", "pool_mean_tokens"} <= set(metrics["english"])
    assert all(isinstance(v, int | float) for m in metrics.values() for v in m.values())
    assert len(rows) == 4


@pytest.mark.parametrize("name", ["japanese", "ja", "zh", "chinese_reviews"])
def test_unit_follows_the_script_not_the_language_name(tokenizer, name):
    """A language written without spaces is counted per character whatever data.languages calls it (zh, ja as the
    ISO codes): per whitespace word, a whole text would be one word, and its tokens per unit not comparable."""
    frame = pd.DataFrame({"language": [name, name, "en"], "text": ["良い映画です", "悪い映画", "good film"]})
    _, rows = tokenization.tokenization_report(tokenizer, {"pool": frame, "test": frame}, (name, "en"), 32)
    assert {(r["language"], r["unit"]) for r in rows} == {(name, "character"), ("en", "word")}
    assert tokenization.unit_of({"Thai": 0.9, "Latin": 0.1}) == "character"
    assert tokenization.unit_of({"Latin": 0.6, "Han": 0.4}) == "word"
