"""General MIDI SoundFonts as instruments: every voice sounds over its whole range, and a
planned performance stays inside its instrument and its clip, for any seed."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import soundfonts
from helpers.demo import DEMO_CLASSES, DemoConfig

TINY = DemoConfig(clips_per_class=4)


def test_every_voice_sounds_at_both_ends_of_its_range():
    """Each class source, in each SoundFont, kit and at its lowest and highest key, is audible."""
    paths = {name: str(soundfonts.soundfont_path(name)) for name in soundfonts.SOUNDFONTS}
    for voices in soundfonts.CLASS_VOICES.values():
        for voice, font in ((v, f) for v in voices for f in soundfonts.SOUNDFONTS):
            if voice.is_drum:
                plays = [(128, kit, k) for kit in soundfonts.SOUNDFONTS[font].drum_kits
                         for k in voice.drum_keys if (font, kit, k) not in soundfonts.BAD_DRUM_KEYS]
            else:
                keys = soundfonts.playable_keys(voice, font)
                plays = [(0, voice.program, int(k)) for k in (keys.min(), keys.max())]
            for bank, program, key in plays:
                perf = soundfonts.Performance(font, bank, program, bank == 128, "note",
                                        (soundfonts.Note(0.0, key, 100, 0.3),), 0.5)
                y = soundfonts.render_performance(perf, paths[font], 22050)
                assert np.max(np.abs(y)) > 0.01, (voice.name, font, program, key)


# ---- planning: invariants for any seed and class -------------------------------------------

@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), label=st.sampled_from(DEMO_CLASSES))
def test_a_plan_stays_inside_the_instrument_and_the_clip(seed, label):
    perf = soundfonts.plan_performance(np.random.default_rng(seed), label, TINY)
    assert TINY.min_seconds <= perf.seconds <= TINY.max_seconds
    assert perf.notes and all(0 <= n.onset < perf.seconds for n in perf.notes)
    assert all(1 <= n.velocity <= 127 for n in perf.notes)
    voices = soundfonts.CLASS_VOICES[label]
    if perf.is_drum:
        assert perf.program in soundfonts.SOUNDFONTS[perf.soundfont].drum_kits
        allowed = {k for v in voices for k in v.drum_keys}
        for n in perf.notes:
            assert n.key in allowed and (perf.soundfont, perf.program, n.key) not in \
                soundfonts.BAD_DRUM_KEYS
    else:
        voice = next(v for v in voices if v.program == perf.program)
        assert {n.key for n in perf.notes} <= set(soundfonts.playable_keys(voice, perf.soundfont))
