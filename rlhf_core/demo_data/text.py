"""Small demo datasets that ship with the package or are made by code.

* ``sentiment.csv``: 200 short handwritten reviews (``text,label``), 100 positive and 100
  negative, written in matched pairs on the same topics so that the topic gives nothing away.
* :func:`instruction_preferences`: a text-preference task built from them. The prompt asks
  for a positive or a negative review; the chosen response (1-3 sentences) has the asked-for
  sentiment, the rejected one the other. A model that only scores sentiment stays at 50%:
  it must read the prompt and the response together.
* :func:`make_shape_images`: an image dataset drawn with PIL, one folder per class.
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import numpy as np

from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.text import TextPreferences

SENTIMENT_CSV = "sentiment.csv"

_ASK = {
    "positive": (
        "Write a positive review.",
        "Tell me what was good about it.",
        "Give an enthusiastic recommendation.",
        "Describe a great experience in a few words.",
        "Say something nice about it.",
        "Write a glowing customer comment.",
    ),
    "negative": (
        "Write a negative review.",
        "Tell me what was bad about it.",
        "Write a complaint.",
        "Describe a disappointing experience in a few words.",
        "Say what went wrong.",
        "Write a scathing customer comment.",
    ),
}


def sentiment_csv_path() -> Path:
    """Path of the packaged sentiment CSV."""
    return Path(str(resources.files("rlhf_core.demo_data") / SENTIMENT_CSV))


def load_text_csv(path: Path) -> tuple[list[str], list[str]]:
    """Texts and labels of a ``text,label`` CSV, with line numbers in the errors."""
    texts, labels = [], []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = {"text", "label"} - set(reader.fieldnames or [])
            if missing:
                raise InvalidInputError(
                    f"{path}: column(s) {', '.join(sorted(missing))} missing; the header must be text,label"
                )
            for line, row in enumerate(reader, start=2):
                text, label = (row.get("text") or "").strip(), (row.get("label") or "").strip()
                if not text or not label:
                    raise InvalidInputError(f"{path}: line {line} has an empty text or label")
                texts.append(text)
                labels.append(label)
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from exc
    except (csv.Error, IsADirectoryError) as exc:
        raise InvalidInputError(f"{path} cannot be read as a CSV file ({exc}); give a text,label CSV") from exc
    if not texts:
        raise InvalidInputError(f"{path} has no rows")
    return texts, labels


def sentiment_examples() -> tuple[list[str], list[str]]:
    """The packaged reviews and their labels ('positive' or 'negative')."""
    return load_text_csv(sentiment_csv_path())


def instruction_preferences(
    texts: list[str], labels: list[str], n_pairs: int, rng: np.random.Generator, max_sentences: int = 3
) -> TextPreferences:
    """``n_pairs`` comparisons: the response with the sentiment the prompt asks for is chosen (A)."""
    by_label = {lab: [t for t, lab2 in zip(texts, labels, strict=True) if lab2 == lab] for lab in _ASK}
    if any(len(v) < max_sentences for v in by_label.values()):
        raise ValueError(f"need at least {max_sentences} positive and negative texts")
    prompts, chosen, rejected = [], [], []
    for _ in range(n_pairs):
        want = "positive" if rng.random() < 0.5 else "negative"
        other = "negative" if want == "positive" else "positive"
        prompts.append(_ASK[want][rng.integers(len(_ASK[want]))])
        chosen.append(_response(by_label[want], rng, max_sentences))
        rejected.append(_response(by_label[other], rng, max_sentences))
    return TextPreferences.chosen_rejected(prompts, chosen, rejected)


def _response(pool: list[str], rng: np.random.Generator, max_sentences: int) -> str:
    k = int(rng.integers(1, max_sentences + 1))
    return " ".join(pool[i] for i in rng.choice(len(pool), size=k, replace=False))


# --- responses in several styles, for scripted personas with conflicting tastes -------------

_CASUAL_OPENERS = ("Honestly, ", "Ok so ", "Tbh ", "Yeah, ", "Lol, ", "Ngl, ")
_FORMAL_OPENERS = ("In my assessment, ", "Overall, ", "To summarise, ", "In short, ", "On balance, ")
_CONTRACTIONS = (
    ("it is", "it's"), ("do not", "don't"), ("does not", "doesn't"), ("did not", "didn't"), ("I am", "I'm"),
    ("was not", "wasn't"), ("is not", "isn't"), ("I would", "I'd"), ("cannot", "can't"), ("would not", "wouldn't"),
)  # fmt: skip
_CASUAL_WORDS = (("very", "super"), ("really", "totally"), ("good", "awesome"), ("bad", "awful"))


def casual(sentence: str, rng: np.random.Generator) -> str:
    """A sentence made casual: contractions, slang, a loose opener and an exclamation."""
    for full, short in _CONTRACTIONS:
        sentence = sentence.replace(full, short)
    for plain, slang in _CASUAL_WORDS:
        sentence = sentence.replace(f" {plain} ", f" {slang} ")
    if rng.random() < 0.7:
        sentence = _CASUAL_OPENERS[rng.integers(len(_CASUAL_OPENERS))] + sentence[0].lower() + sentence[1:]
    return sentence.rstrip(".") + ("!!" if rng.random() < 0.5 else "!")


def formal(sentence: str, rng: np.random.Generator) -> str:
    """A sentence made formal: no contractions, a measured opener, a full stop."""
    for full, short in _CONTRACTIONS:
        sentence = sentence.replace(short, full)
    if rng.random() < 0.5:
        sentence = _FORMAL_OPENERS[rng.integers(len(_FORMAL_OPENERS))] + sentence[0].lower() + sentence[1:]
    return sentence.rstrip("!.") + "."


def styled_responses(n: int, rng: np.random.Generator, max_sentences: int = 4) -> list[tuple[str, str]]:
    """``n`` (prompt, response) items: reviews of 1 to ``max_sentences`` sentences, each response
    all casual or all formal (at random), for personas that judge by length and register."""
    texts, _ = sentiment_examples()
    prompt = "Write a short review."
    items = []
    for _ in range(n):
        k = int(rng.integers(1, max_sentences + 1))
        style = casual if rng.random() < 0.5 else formal
        items.append((prompt, " ".join(style(texts[i], rng) for i in rng.choice(len(texts), size=k, replace=False))))
    return items
