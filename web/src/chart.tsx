// A line chart (uPlot): x values and one or more series, each optionally with a band (lo/hi).
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  values: (number | null)[];
  lo?: (number | null)[];
  hi?: (number | null)[];
}

const COLORS = ['#0969da', '#cf222e', '#1a7f37', '#9a6700', '#8250df', '#bf3989'];

export function Chart({ x, series, xLabel, height = 220, title }: { x: number[]; series: Series[]; xLabel: string; height?: number; title?: string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!box.current || x.length === 0) return;
    const data: uPlot.AlignedData = [x];
    const opts: uPlot.Options = {
      title,
      width: Math.max(300, box.current.clientWidth),
      height,
      scales: { x: { time: false } },
      // Runs and steps are whole numbers.
      axes: [{ label: xLabel, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10000, 100000] }, {}],
      series: [{ label: xLabel }],
    };
    series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      data.push(s.values as number[]);
      opts.series.push({ label: s.label, stroke: color, width: 2, points: { show: x.length < 60 } });
      if (s.lo && s.hi) {
        data.push(s.lo as number[], s.hi as number[]);
        opts.series.push({ label: `${s.label} lo`, stroke: color + '55', dash: [4, 4], width: 1 });
        opts.series.push({ label: `${s.label} hi`, stroke: color + '55', dash: [4, 4], width: 1 });
      }
    });
    const plot = new uPlot(opts, data, box.current);
    return () => plot.destroy();
  }, [x, series]);
  return <div class="chart" ref={box} />;
}
