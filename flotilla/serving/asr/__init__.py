"""Speech recognition with Whisper (faster-whisper, CTranslate2), offline.

- `models`: names -> local CTranslate2 model folders (`whisper-tiny.en`, `whisper-base`, and the study's
  `whisper-medium` / `whisper-large` where the user provides a conversion); nothing is downloaded.
- `audio`: MP3/WAV/FLAC -> 16 kHz mono float32, `AudioError` on broken input.
- `transcriber`: `Transcriber` (one loaded model) -> `Transcript`, and the txt/json/srt/vtt writers.
- `server`: the OpenAI-compatible `POST /v1/audio/transcriptions` app with Prometheus metrics.
- `cli`: `flotilla asr transcribe` and `flotilla serve asr`.

This package imports nothing heavy: faster-whisper is loaded when a model is.
"""
