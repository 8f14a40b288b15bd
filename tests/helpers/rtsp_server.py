"""A real RTSP server for the integration tests, built on GStreamer's gst-rtsp-server.

Run it with Debian's ``/usr/bin/python3`` (where ``gi`` lives), not the project venv::

    /usr/bin/python3 tests/helpers/rtsp_server.py --port 0 --path /cam

It serves an H.264 stream of ``videotestsrc is-live=true`` on ``rtsp://127.0.0.1:PORT/PATH``
(shared media, so every client sees the same stream) and prints ``READY <port>`` on stdout once
it listens. ``--freeze-after S`` keeps the session open but stops sending video S seconds after
the media first plays (a ``valve`` drops every buffer), which is what a hung camera looks like.

Debian packages: gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base
gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly (x264enc).
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def launch_line(width: int, height: int, fps: int, frames: str | None = None) -> str:
    """The gst-launch description of the served media (one H.264 video stream, payloader pay0).

    Args:
        width, height, fps: the picture served.
        frames: a ``printf`` pattern of raw I420 frame files (``dir/%05d.i420``, each
            ``width * height * 3 / 2`` bytes), played in a loop at ``fps`` in real time instead of
            the test pattern (what ``bench/soak.py`` serves: the synthetic scenes).
    """
    if frames is not None:
        source = (
            f"multifilesrc location={frames} loop=true "
            f"! rawvideoparse width={width} height={height} format=i420 framerate={fps}/1 "
            "! clocksync "
        )
    else:
        source = (
            "videotestsrc is-live=true pattern=ball "
            f"! video/x-raw,width={width},height={height},framerate={fps}/1 "
        )
    return (
        f"( {source}"
        "! videoconvert "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        "! video/x-h264,profile=baseline "
        "! valve name=gate drop=false "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


# Element -> Debian package that provides it, to name the fix when one is missing.
REQUIRED_ELEMENTS = {
    "videotestsrc": "gstreamer1.0-plugins-base",
    "multifilesrc": "gstreamer1.0-plugins-good",
    "rawvideoparse": "gstreamer1.0-plugins-base",
    "clocksync": "libgstreamer1.0-0 (core elements)",
    "videoconvert": "gstreamer1.0-plugins-base",
    "x264enc": "gstreamer1.0-plugins-ugly",
    "valve": "libgstreamer1.0-0 (core elements)",
    "rtph264pay": "gstreamer1.0-plugins-good",
}


def missing_elements() -> list[str]:
    """``"element (package)"`` for each GStreamer element the launch line needs but lacks."""
    return [
        f"{name} ({package})"
        for name, package in REQUIRED_ELEMENTS.items()
        if Gst.ElementFactory.find(name) is None
    ]


def main() -> int:
    """Parse arguments, start the server and run the GLib main loop until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument("--path", default="/test", help="mount path, starting with /")
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument(
        "--frames",
        default=None,
        help="printf pattern of raw I420 frame files to loop instead of the test pattern",
    )
    parser.add_argument(
        "--freeze-after",
        type=float,
        default=None,
        help="seconds after the media starts after which no more video is sent",
    )
    parser.add_argument(
        "--credentials",
        default=None,
        metavar="USER:PASSWORD",
        help="require HTTP basic authentication with these credentials (401 otherwise)",
    )
    args = parser.parse_args()

    Gst.init(None)
    missing = missing_elements()
    if missing:
        print(f"ERROR missing GStreamer elements: {', '.join(missing)}", flush=True)
        return 2
    loop = GLib.MainLoop()

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args.width, args.height, args.fps, args.frames))
    factory.set_shared(True)

    if args.freeze_after is not None:
        freeze_ms = int(args.freeze_after * 1000)

        def on_media_configure(
            _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia
        ) -> None:
            gate = media.get_element().get_by_name("gate")

            def freeze() -> bool:
                gate.set_property("drop", True)
                print("FROZEN", flush=True)
                return False

            GLib.timeout_add(freeze_ms, freeze)

        factory.connect("media-configure", on_media_configure)

    if args.credentials is not None:
        user, password = args.credentials.split(":", 1)
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role_from_structure(
            Gst.Structure.new_from_string(
                "viewer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )
        )
        factory.set_permissions(permissions)

    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"ERROR cannot listen on 127.0.0.1:{args.port}", flush=True)
        return 1

    def quit_loop(*_: object) -> bool:
        loop.quit()
        return False

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, quit_loop)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, quit_loop)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
