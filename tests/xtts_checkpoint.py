"""A tiny XTTS-v2 checkpoint with random weights, generated at test time (never committed).

Same files and layout as the real release (config.json, model.pth, vocab.json) but a 2-layer,
64-channel GPT and a generated character vocabulary: ~95 MB (the HiFi-GAN decoder and speaker
encoder have fixed sizes), loaded by the normal code path. It proves plumbing, not the voice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facecast.speech.xtts import LANGUAGES, _import_torchaudio

SPECIAL_TOKENS = ["[STOP]", "[UNK]", "[SPACE]", "[START]"]
CHARACTERS = list("abcdefghijklmnopqrstuvwxyzäöüßéèàç.,!?'-:;")


def _config() -> Any:
    from TTS.tts.configs.xtts_config import XttsConfig

    config = XttsConfig()
    args = config.model_args
    args.gpt_layers = 2
    args.gpt_n_model_channels = 64
    args.gpt_n_heads = 4
    args.decoder_input_dim = 64
    args.gpt_max_audio_tokens = 40
    return config


def write_vocab(path: Path) -> None:
    """A character-level BPE vocabulary with XTTS's special and language tokens."""
    from tokenizers import Tokenizer, models

    specials = SPECIAL_TOKENS + [f"[{lang}]" for lang in LANGUAGES]
    vocab = {token: index for index, token in enumerate(specials + CHARACTERS)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.add_special_tokens(specials)
    tokenizer.save(str(path))


def make_checkpoint(folder: Path, *, old_format: bool = False, seed: int = 0) -> Path:
    """Write config.json, vocab.json and model.pth into `folder`. `old_format` pickles the
    config object into model.pth the way the original release does."""
    import torch

    _import_torchaudio()
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
    from TTS.tts.models.xtts import Xtts

    folder.mkdir(parents=True, exist_ok=True)
    write_vocab(folder / "vocab.json")
    config = _config()
    torch.manual_seed(seed)
    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(folder / "vocab.json")
    model.init_models()
    if old_format:
        from TTS.tts.models import xtts as xtts_module

        # The release pickled the config object, its parts under their old module path.
        with xtts_module._legacy_safe_globals():
            torch.save({"model": model.state_dict(), "config": config}, folder / "model.pth")
    else:
        torch.save({"model": model.state_dict(), "config": config.to_dict()}, folder / "model.pth")
    config.save_json(str(folder / "config.json"))
    return folder


def write_speakers(path: Path, names: tuple[str, ...], seed: int = 0) -> None:
    """A `speakers_xtts.pth` like the release's: name -> conditioning latents (random here)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    speakers = {
        name: {
            "gpt_cond_latent": torch.randn(1, 32, 64, generator=generator),
            "speaker_embedding": torch.randn(1, 512, 1, generator=generator),
        }
        for name in names
    }
    torch.save(speakers, path)
