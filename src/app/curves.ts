/**
 * The live training curves of the page: each step's loss and the epoch's running accuracy against the step,
 * drawn on a canvas (a few hundred points, redrawn at most once a frame). The loss has its own scale on the
 * left, the accuracy 0..1 on the right.
 */
export interface CurvePoint {
  readonly step: number;
  readonly loss: number;
  readonly accuracy: number;
}

const LOSS = '#2563eb';
const ACCURACY = '#ea580c';

export function drawCurves(canvas: HTMLCanvasElement, points: readonly CurvePoint[]): void {
  const ctx = canvas.getContext('2d');
  if (ctx === null) return;
  const { width, height } = canvas;
  const left = 48;
  const right = width - 48;
  const top = 16;
  const bottom = height - 28;
  ctx.clearRect(0, 0, width, height);
  ctx.strokeStyle = '#c5cbd3';
  ctx.lineWidth = 1;
  ctx.strokeRect(left, top, right - left, bottom - top);
  ctx.font = '12px system-ui, sans-serif';
  ctx.fillStyle = '#5b6474';
  if (points.length === 0) {
    ctx.fillText('loss and accuracy appear here while the model trains', left + 12, top + 24);
    return;
  }
  const lastStep = points[points.length - 1].step;
  const maxLoss = Math.max(...points.map((p) => p.loss), 1e-6);
  const x = (step: number): number => left + ((right - left) * step) / Math.max(lastStep, 1);
  const line = (color: string, y: (p: CurvePoint) => number): void => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach((p, i) => (i === 0 ? ctx.moveTo(x(p.step), y(p)) : ctx.lineTo(x(p.step), y(p))));
    ctx.stroke();
  };
  line(LOSS, (p) => bottom - ((bottom - top) * p.loss) / maxLoss);
  line(ACCURACY, (p) => bottom - (bottom - top) * p.accuracy);
  ctx.fillStyle = '#5b6474';
  ctx.textAlign = 'right';
  ctx.fillText(maxLoss.toFixed(2), left - 6, top + 10);
  ctx.fillText('0', left - 6, bottom);
  ctx.textAlign = 'left';
  ctx.fillText('1', right + 6, top + 10);
  ctx.fillText('0', right + 6, bottom);
  ctx.textAlign = 'center';
  ctx.fillText(`step ${lastStep}`, (left + right) / 2, height - 8);
  ctx.textAlign = 'left';
  ctx.fillStyle = LOSS;
  ctx.fillText('loss (batch)', left + 8, top + 16);
  ctx.fillStyle = ACCURACY;
  ctx.fillText('accuracy (running, epoch)', left + 100, top + 16);
}
