"""The systolic engine's job control: size check, sampled sizes, start and done.

``job.start`` (while idle) samples the problem's sizes and checks them; the
next cycle either fails the job (``job.error`` and ``job.done``) or
launches it (``launch``, then ``running``). The sequencer starts from the
sampled registers a cycle after ``start``, so its wide start fan-out comes
from flip-flops, not from the compares. The job is done when its last
result leaves the engine (``finished``).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import AccelConfig, checked_config
from .helpers import above, smallest_of
from .job_control import JobControl

__all__ = ["EngineStart", "SIZE_NAMES"]

#: The engine's problem-size inputs, sampled at ``start``.
SIZE_NAMES = ("n_vectors", "row_length", "k_terms", "m_outputs", "chunks")


class EngineStart(wiring.Component):
    """Start, size check and done of the systolic engine (see the module).

    Parameters
    ----------
    config : AccelConfig
        The maxima and ``array_block``.
    chunk_max : int
        Most reduction tiles per tap of a grouped problem.

    Attributes
    ----------
    n_vectors, row_length, k_terms, m_outputs, chunks : In(unsigned)
        The problem's sizes (read at ``job.start``).
    job : In(JobControl())
        The engine's job port (``cancel`` is ignored).
    finished : In(1)
        The problem's last result leaves the engine.
    held : Out(StructLayout)
        The sizes sampled at the last start.
    first_block : Out(unsigned)
        The first block's size, ``min(n_vectors, row_length, array_block)``.
    launch : Out(1)
        The cycle after a start with good sizes: start the sequencer, the
        weight loader and the counters.
    running : Out(1)
        From the cycle after ``launch`` until the last result leaves.
    """

    def __init__(self, config: AccelConfig, chunk_max: int):
        checked_config(config)
        self.config, self.chunk_max = config, chunk_max
        sizes = {
            "n_vectors": In(range(config.max_vectors + 1)),
            "row_length": In(range(config.max_vectors + 1)),
            "k_terms": In(range(config.max_reduction + 1)),
            "m_outputs": In(range(config.max_out_channels + 1)),
            "chunks": In(range(chunk_max + 1)),
        }
        super().__init__({
            **sizes,
            "job": In(JobControl()),
            "finished": In(1),
            "held": Out(data.StructLayout({name: member.shape
                                           for name, member in sizes.items()})),
            "first_block": Out(range(config.array_block + 1)),
            "launch": Out(1),
            "running": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, job = self.config, self.job
        bad = ((self.n_vectors == 0) | above(self.n_vectors, cfg.max_vectors)
               | (self.row_length == 0) | above(self.chunks, self.chunk_max)
               | (self.k_terms == 0) | above(self.k_terms, cfg.max_reduction)
               | (self.m_outputs == 0) | above(self.m_outputs, cfg.max_out_channels))
        begin, bad_held = Signal(), Signal()      # the cycle after start
        m.d.comb += [job.busy.eq(self.running | begin), self.launch.eq(begin & ~bad_held)]
        m.d.sync += begin.eq(0)
        with m.If(job.start & ~job.busy):
            m.d.sync += [begin.eq(1), bad_held.eq(bad), job.done.eq(0), job.error.eq(0)]
            m.d.sync += [getattr(self.held, name).eq(getattr(self, name)) for name in SIZE_NAMES]
            m.d.sync += self.first_block.eq(
                smallest_of(self.n_vectors, self.row_length, cfg.array_block)[0])
        with m.If(begin):
            m.d.sync += [job.done.eq(bad_held), job.error.eq(bad_held),
                         self.running.eq(~bad_held)]
        with m.Elif(self.running & self.finished):
            m.d.sync += [self.running.eq(0), job.done.eq(1)]
        return m
