"""Short synthetic signals for smoke runs: speech-like audio that voice detectors accept, made in memory.

Library code, not test code: every family's smoke run uses them.
"""

from __future__ import annotations

import functools

import numpy as np


def speech_like(seconds: float, sr: int = 16000, *, seed: int = 0) -> np.ndarray:
    """Mono float32 signal that voice-activity detectors take for speech.

    Pure tones and noise score as non-speech; a harmonic source with a moving
    pitch, moving formants and a 4 Hz syllable envelope scores ~0.99.
    Synthesis takes ~0.1 s, so each signal is made once per process; callers get a copy.
    """
    return _speech_like(float(seconds), int(sr), int(seed)).copy()


@functools.lru_cache(maxsize=8)
def _speech_like(seconds: float, sr: int, seed: int) -> np.ndarray:
    n = max(1, round(seconds * sr))
    t = np.arange(n, dtype=np.float64) / sr
    rng = np.random.default_rng(seed)
    f0 = 135.0 + 25.0 * np.sin(2 * np.pi * 0.6 * t) + 12.0 * np.sin(2 * np.pi * 3.3 * t + 1.0)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    f1 = 550.0 + 200.0 * np.sin(2 * np.pi * 4.0 * t / 3.0)  # vowel changes every few syllables
    f2 = 1500.0 + 500.0 * np.sin(2 * np.pi * 0.9 * t + 0.5)
    voice = np.zeros(n)
    harmonics = max(1, int((sr / 2 - 200) // 200))  # stay below Nyquist at the top pitch
    for k in range(1, min(harmonics, 40) + 1):
        fk = k * f0
        amp = np.exp(-(((fk - f1) / 180.0) ** 2)) + 0.6 * np.exp(-(((fk - f2) / 260.0) ** 2)) + 0.03
        voice += amp * np.sin(k * phase) / np.sqrt(k)
    syllables = 0.5 - 0.5 * np.cos(2 * np.pi * 4.0 * t)  # 4 syllables a second
    signal = voice * syllables ** 1.5 + 0.003 * rng.standard_normal(n)
    signal *= 0.5 / max(float(np.max(np.abs(signal))), 1e-9)
    return signal.astype(np.float32)


def speech_like_stereo(seconds: float, sr: int = 44100, *, seed: int = 0) -> np.ndarray:
    """(2, samples) float32 "song": speech-like voice plus a bass line, panned apart (made once, copied)."""
    return _speech_like_stereo(float(seconds), int(sr), int(seed)).copy()


@functools.lru_cache(maxsize=4)
def _speech_like_stereo(seconds: float, sr: int, seed: int) -> np.ndarray:
    voice = _speech_like(seconds, sr, seed).astype(np.float64)
    t = np.arange(voice.shape[0]) / sr
    bass = 0.2 * np.sin(2 * np.pi * 55.0 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2.0 * t) ** 2)
    left, right = 0.8 * voice + bass, 0.6 * voice + bass
    return np.stack([left, right]).astype(np.float32)
