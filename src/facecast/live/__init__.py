"""Live talking photos: a WebRTC session that renders a rigged photo as it speaks.

idle.py        the face between utterances (blinks, breathing, sway, gaze)
utterances.py  text and streamed audio -> segments (sound + mouth curves)
playout.py     the session's timeline: what plays, and the mouth at each moment
tracks.py      aiortc video and audio tracks paced by one clock
protocol.py    the data channel's JSON messages
session.py     one peer connection with its limits
process.py     a session in a process of its own, driven over a pipe
"""
