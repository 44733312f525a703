"""One job controller for the docks: run a headless function in a thread, with Cancel, progress,
one-line errors and a clean teardown when the dock or the viewer closes.

What it guarantees (the docks rely on it, docs/architecture.md says it once):

- **One job at a time.** :meth:`JobController.start` refuses a second job while one runs; the Run
  buttons are disabled and Cancel enabled for the job's lifetime, and restored when it ends.
- **Cancel is a ``threading.Event``** handed to the headless function (``cancel=``); the function
  checks it between its units of work and raises :class:`~napari_seisfm.errors.SeisfmCancelled`.
- **Progress never floods the GUI thread.** The worker thread only stores the latest report
  (:meth:`report`, any arguments); a GUI timer shows it at most every ``interval_ms``. A report
  costs the worker an attribute assignment and the GUI one update per tick, however fast the job
  reports. ``keep_all=True`` also keeps every report for docks that plot a history.
- **Errors are one line** (:func:`._notify.report`): cancellation as info, ``SeisfmError`` as is,
  anything else with its type. Never a traceback dialog, never re-raised in the GUI thread.
- **Progress you can read.** ``report(done, total, *detail)``: the bar shows the percentage and the
  time left from the pace so far; a text detail (the codec, the phase) goes on the dock's status line.
  The bar never moves backwards within a job.
- **Teardown.** When the dock is destroyed or the viewer window closes, the job is cancelled and
  waited for briefly (``wait_s``, a second: cancel is heard within a step of the work); afterwards no
  callback touches a Qt object again, so a job that ends later ends silently. When the application
  quits, it waits for such jobs to end (they were cancelled) before Python shuts down, so the process
  exits cleanly. Headless functions leave their output resumable on cancel (feature stores stay
  marked incomplete, pretraining keeps a checkpoint).
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections.abc import Callable

from qtpy.QtCore import QCoreApplication, QEvent, QObject, QTimer
from qtpy.QtWidgets import QMainWindow

from ...progress import Rate, format_eta
from ...threads import one_thread_per_worker
from . import _notify

REFRESH_MS = 150  # progress shown at most ~7 times a second
TEARDOWN_WAIT_S = 1.0  # how long closing the viewer waits for a cancelled job to stop (cancel is heard within a step)
QUIT_WAIT_S = 30.0  # how long quitting the application waits for cancelled jobs, so Python never shuts down under them
_RUNNING: weakref.WeakSet = weakref.WeakSet()  # controllers whose job has not returned yet


class JobController:
    """Runs one job at a time for a dock widget (see the module docstring for the guarantees).

    ``run_buttons``: disabled while a job runs; ``cancel_button``: enabled while a job runs and
    wired to :meth:`cancel`; ``progress_bar``: set by the default progress display
    (``done, total``: a 0-1000 scale, busy until the first report); ``on_progress(*report)``
    replaces that display; ``what``: the job's name in error messages.
    """

    def __init__(
        self,
        widget,
        *,
        run_buttons=(),
        cancel_button=None,
        progress_bar=None,
        on_progress: Callable | None = None,
        what: str = "job",
        interval_ms: int = REFRESH_MS,
        keep_all: bool = False,
        viewer=None,
        wait_s: float = TEARDOWN_WAIT_S,
        on_detail: Callable[[str], None] | None = None,
    ):
        self.widget = widget
        self.run_buttons = tuple(run_buttons)
        self.cancel_button = cancel_button
        self.progress_bar = progress_bar
        self.on_progress = on_progress or self._show_progress
        self.on_detail = on_detail  # the default display's text detail (a phase, a codec): the status line
        self.on_teardown: Callable[[], None] | None = None  # what else goes when the dock or the viewer goes
        self._rate = Rate()
        self._fraction = 0.0
        self.what = what
        self.keep_all = keep_all
        self.wait_s = wait_s
        self.cancel_event = threading.Event()
        self.worker = None
        self.closed = False  # torn down: nothing of the widget is touched again
        self._done = threading.Event()
        self._done.set()
        self._latest = None  # the last report (a tuple), written by the worker thread
        self._shown = None
        self._all: list = []
        self._lock = threading.Lock()
        self._on_done = self._on_error = self._on_finished = None
        self._timer = QTimer(widget)
        self._timer.setInterval(int(interval_ms))
        self._timer.timeout.connect(self.flush)
        if cancel_button is not None:
            cancel_button.setEnabled(False)
            cancel_button.clicked.connect(self.cancel)
        # teardown: the lambdas hold the controller, not the widget (gone by the time destroyed fires)
        widget.destroyed.connect(lambda *_: self.teardown())
        self._watcher = None
        on_main_window(widget, viewer, lambda window: setattr(self, "_watcher", _CloseWatcher(self, window)))

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        return self.worker is not None

    @property
    def done_event(self) -> threading.Event:
        """Set when the job's function has returned or raised (the worker thread is done with it)."""
        return self._done

    # ------------------------------------------------------------------ start / cancel
    def start(self, fn, *args, on_done=None, on_error=None, on_finished=None, on_yield=None, **kwargs) -> bool:
        """Run ``fn(*args, **kwargs)`` in a thread; False (nothing started) when a job runs already.

        ``on_done(result)`` runs in the GUI thread when ``fn`` returns; ``on_error(exc)`` replaces
        the one-line report; ``on_finished()`` runs after either. A generator ``fn`` hands each value it
        yields to ``on_yield`` (in the GUI thread) and its return value to ``on_done``. Pass
        ``cancel=ctl.cancel_event`` and ``progress=ctl.report`` to ``fn`` yourself, under the names it takes.
        """
        from napari.qt.threading import create_worker

        if self.worker is not None or self.closed:
            return False
        self.cancel_event.clear()
        with self._lock:
            self._latest, self._shown, self._all = None, None, []
        self._on_done, self._on_error, self._on_finished = on_done, on_error, on_finished
        done = self._done = threading.Event()
        connect = {"returned": self._returned, "errored": self._errored, "finished": self._finished}
        # one BLAS/OpenMP/torch thread per worker (napari_seisfm/threads.py), for the whole job
        if inspect.isgeneratorfunction(fn):

            def body():
                try:
                    return (yield from _pinned_steps(fn(*args, **kwargs)))
                finally:
                    done.set()

            if on_yield is not None:
                connect["yielded"] = lambda value: None if self.closed else on_yield(value)
        else:

            def body():
                try:
                    with one_thread_per_worker():
                        return fn(*args, **kwargs)
                finally:
                    done.set()

        # errored is always connected: napari then never re-raises the exception in the GUI thread
        self.worker = create_worker(body, _start_thread=False, _connect=connect)
        for b in self.run_buttons:
            b.setEnabled(False)
        if self.cancel_button is not None:
            self.cancel_button.setEnabled(True)
        self._rate, self._fraction = Rate(), 0.0
        if self.progress_bar is not None:
            self.progress_bar.setRange(0, 0)  # busy until the first report
            self.progress_bar.setFormat("%p%")
        _RUNNING.add(self)
        _quit_waits_for_jobs()
        self._timer.start()
        self.worker.start()
        return True

    def cancel(self):
        """Ask the job to stop at its next check (the headless function raises SeisfmCancelled)."""
        self.cancel_event.set()

    def report(self, *values):
        """Any thread: note a progress report; the GUI timer shows the latest one."""
        if self.keep_all:
            with self._lock:
                self._all.append(values)
                self._latest = values
        else:
            self._latest = values

    def take_all(self) -> list:
        """GUI thread: the reports kept since the last call (``keep_all=True``)."""
        with self._lock:
            out, self._all = self._all, []
        return out

    def flush(self):
        """GUI thread: show the latest report if it is new (the timer calls this)."""
        if self.closed:
            return
        latest = self._latest
        if latest is None or latest is self._shown:
            return
        self._shown = latest
        self.on_progress(*latest)

    def _show_progress(self, done, total, *detail):
        """The default display: percentage and time left on the bar, a text detail on the status line."""
        fraction = max(min(max(float(done) / max(float(total), 1e-12), 0.0), 1.0), self._fraction)
        self._fraction = fraction
        eta = format_eta(self._rate.eta(fraction))
        bar = self.progress_bar
        if bar is not None:
            if bar.maximum() != 1000:
                bar.setRange(0, 1000)
            bar.setValue(int(round(1000 * fraction)))
            bar.setFormat(f"%p%  ·  {eta}" if eta else "%p%")
        if self.on_detail is not None and detail and isinstance(detail[0], str):
            self.on_detail(detail[0])

    # ------------------------------------------------------------------ worker signals (GUI thread)
    def _returned(self, result):
        if self.closed:
            return
        self.flush()
        if self._on_done is not None:
            self._on_done(result)

    def _errored(self, exc):
        if self.closed:
            return
        self.flush()
        if self._on_error is not None:
            self._on_error(exc)
        else:
            _notify.report(exc, self.what)

    def _finished(self):
        self.worker = None
        _RUNNING.discard(self)
        on_finished = self._on_finished
        self._on_done = self._on_error = self._on_finished = None  # the job's closures (layers, viewers) go
        if self.closed:
            return
        self._timer.stop()
        for b in self.run_buttons:
            b.setEnabled(True)
        if self.cancel_button is not None:
            self.cancel_button.setEnabled(False)
        if self.progress_bar is not None:
            self.progress_bar.setFormat("%p%")
            if self.progress_bar.maximum() == 0:
                self.progress_bar.setRange(0, 1)  # stopped before any report: not busy any more
        if on_finished is not None:
            on_finished()

    # ------------------------------------------------------------------ teardown
    def teardown(self, wait_s: float | None = None) -> bool:
        """Cancel the job and wait for it (up to ``wait_s``); never touch the widget again.
        Returns whether no job is left running."""
        if self.closed:
            return self._done.is_set()
        self.closed = True
        self.cancel_event.set()
        if self.on_teardown is not None:
            try:  # noqa: SIM105
                self.on_teardown()
            except RuntimeError:  # its Qt objects went first
                pass
        worker = self.worker
        if worker is not None:
            worker.quit()  # napari's abort flag: the result of a job that still finishes is dropped
        try:  # noqa: SIM105
            self._timer.stop()
        except RuntimeError:  # the timer went with the widget
            pass
        return self._done.wait(self.wait_s if wait_s is None else wait_s)


def _pinned_steps(gen):
    """A generator job's steps, each inside the thread policy but never across a yield: a job abandoned
    between two steps (its viewer closed) must not leave the process pinned to one thread."""
    value = None
    while True:
        with one_thread_per_worker():
            try:
                item = gen.send(value)
            except StopIteration as stop:
                return stop.value
        value = yield item


def _quit_waits_for_jobs() -> None:
    """Once per application: when it is about to quit (the last window closed), wait for the jobs still
    running (cancelled by the close) before the script goes on to shut Python down under them."""
    app = QCoreApplication.instance()
    if app is None or getattr(app, "_seisfm_waits_for_jobs", False):
        return
    app._seisfm_waits_for_jobs = True
    app.aboutToQuit.connect(wait_for_jobs)


def wait_for_jobs(timeout_s: float = QUIT_WAIT_S) -> bool:
    """Cancel every job still running and wait for them (up to ``timeout_s`` in all); True when none is left."""
    import time

    from qtpy.QtCore import QThreadPool

    end = time.monotonic() + timeout_s
    for ctl in list(_RUNNING):
        ctl.cancel_event.set()
    for ctl in list(_RUNNING):
        if not ctl.done_event.wait(max(0.0, end - time.monotonic())):
            return False
    # the functions have returned; let their workers finish emitting before Qt and Python go
    return QThreadPool.globalInstance().waitForDone(int(1000 * max(0.0, end - time.monotonic())))


class _Closed:
    """A flag set when a dock or its viewer goes (what :func:`watch_close` returns)."""

    def __init__(self):
        self.event = threading.Event()

    def teardown(self):
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


def watch_close(widget, viewer) -> _Closed:
    """A flag set when ``widget`` is destroyed or ``viewer``'s window closes: results of short jobs that
    land afterwards (a map worker) must not touch the layers of a viewer being torn down."""
    flag = _Closed()
    widget.destroyed.connect(lambda *_: flag.teardown())
    on_main_window(widget, viewer, lambda window: setattr(flag, "_watcher", _CloseWatcher(flag, window)))
    return flag


def on_main_window(widget, viewer, attach) -> None:
    """Call ``attach(main_window)`` once the viewer's Qt main window is known. A viewer handed over directly
    gives it at once. A dock opened from the Plugins menu gets napari's public-only proxy of the viewer, whose
    private attributes (the Qt window) are out of bounds: then it is the window the widget is shown in."""
    if not hasattr(viewer, "__wrapped__"):
        window = getattr(getattr(viewer, "window", None), "_qt_window", None)
        if window is not None:
            attach(window)
        return
    widget._seisfm_window_watch = _ShownIn(widget, attach)


class _ShownIn(QObject):
    """Calls ``attach(window)`` the first time ``widget`` is shown inside a main window."""

    def __init__(self, widget, attach):
        super().__init__(widget)
        self._attach = attach
        widget.installEventFilter(self)

    def eventFilter(self, obj, event):
        if self._attach is not None and event.type() in (QEvent.Type.ParentChange, QEvent.Type.Show):
            top = obj.window()
            if isinstance(top, QMainWindow):
                attach, self._attach = self._attach, None
                attach(top)
        return False


class _CloseWatcher(QObject):
    """Tears the controller down when the viewer's main window closes.

    A programmatic close (``viewer.close()``) is never refused, so it tears down at once; a close
    by the user can still be refused in napari's confirmation dialog, so it waits for the window
    to be destroyed (the dock's own ``destroyed`` does the same)."""

    def __init__(self, controller: JobController, window):
        super().__init__(window)
        self._controller = controller
        window.installEventFilter(self)
        controller_ref = controller
        window.destroyed.connect(lambda *_: controller_ref.teardown())

    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Close and not event.spontaneous():
            self._controller.teardown()
        return False


def background_job(viewer, fn, *args, what: str, on_done=None, on_error=None) -> JobController:
    """Run ``fn(*args, progress=..., cancel=...)`` off the GUI thread for work no dock owns (a reader's
    load): one-line errors, cancelled when the viewer closes, waited for when the application quits."""
    ctl = JobController(QObject(), what=what, viewer=viewer)  # holds no window: it goes with the job
    ctl.start(fn, *args, progress=ctl.report, cancel=ctl.cancel_event, on_done=on_done, on_error=on_error)
    return ctl
