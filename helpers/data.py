"""Datasets: class names, named subsets, and one loader for FSDKaggle2018 and the demo set.

Both datasets share FSDKaggle2018's unpacked layout::

    <root>/FSDKaggle2018.audio_train/*.wav
    <root>/FSDKaggle2018.audio_test/*.wav
    <root>/FSDKaggle2018.meta/train_post_competition.csv
    <root>/FSDKaggle2018.meta/test_post_competition_scoring_clips.csv

so one code path (:func:`load_clips`) serves both.
Used in: notebooks/01_eda.ipynb and every later notebook.
"""

from __future__ import annotations

# The 41 classes of FSDKaggle2018 (DCASE 2018 Task 2), alphabetical.
ALL_CLASSES: tuple[str, ...] = (
    "Acoustic_guitar", "Applause", "Bark", "Bass_drum", "Burping_or_eructation", "Bus",
    "Cello", "Chime", "Clarinet", "Computer_keyboard", "Cough", "Cowbell", "Double_bass",
    "Drawer_open_or_close", "Electric_piano", "Fart", "Finger_snapping", "Fireworks", "Flute",
    "Glockenspiel", "Gong", "Gunshot_or_gunfire", "Harmonica", "Hi-hat", "Keys_jangling",
    "Knock", "Laughter", "Meow", "Microwave_oven", "Oboe", "Saxophone", "Scissors", "Shatter",
    "Snare_drum", "Squeak", "Tambourine", "Tearing", "Telephone", "Trumpet", "Violin_or_fiddle",
    "Writing",
)  # fmt: skip

# The 19 musical-instrument classes.
INSTRUMENT_CLASSES: tuple[str, ...] = (
    "Acoustic_guitar", "Bass_drum", "Cello", "Chime", "Clarinet", "Cowbell", "Double_bass",
    "Electric_piano", "Flute", "Glockenspiel", "Gong", "Harmonica", "Hi-hat", "Oboe",
    "Saxophone", "Snare_drum", "Tambourine", "Trumpet", "Violin_or_fiddle",
)  # fmt: skip

# Named subsets: which classes a run uses.
SUBSETS: dict[str, tuple[str, ...]] = {
    # the 5 classes of the seed student project
    "seed5": ("Acoustic_guitar", "Cello", "Clarinet", "Double_bass", "Saxophone"),
    # the 10 classes of the well-known Keras audio-classification tutorial
    "keras10": (
        "Acoustic_guitar", "Bass_drum", "Cello", "Clarinet", "Double_bass", "Flute", "Hi-hat",
        "Saxophone", "Snare_drum", "Violin_or_fiddle",
    ),
    "instruments19": INSTRUMENT_CLASSES,
    "all41": ALL_CLASSES,
}  # fmt: skip

TRAIN_CSV = "train_post_competition.csv"
TEST_CSV = "test_post_competition_scoring_clips.csv"
AUDIO_TRAIN_DIR = "FSDKaggle2018.audio_train"
AUDIO_TEST_DIR = "FSDKaggle2018.audio_test"
META_DIR = "FSDKaggle2018.meta"
