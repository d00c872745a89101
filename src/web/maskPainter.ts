// The edit mask, painted with the pointer on a canvas laid over the selected node's image. The canvas
// holds the mask at the image's own size (a 32×32 image gets a 32×32 mask), white where the edit may
// change pixels; it is sent as an opaque PNG (black = keep), which is what EditInput.mask expects.

export class MaskPainter {
  readonly canvas: HTMLCanvasElement;
  private painted = false;
  private drawing = false;
  enabled = false;
  onChange: () => void = () => {};

  constructor() {
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'mask-layer';
    this.canvas.setAttribute('aria-label', 'Edit mask (paint the area that may change)');
    this.canvas.addEventListener('pointerdown', (e) => {
      if (!this.enabled) return;
      this.drawing = true;
      this.canvas.setPointerCapture(e.pointerId);
      this.paintAt(e);
    });
    this.canvas.addEventListener('pointermove', (e) => this.drawing && this.paintAt(e));
    const stop = () => (this.drawing = false);
    this.canvas.addEventListener('pointerup', stop);
    this.canvas.addEventListener('pointercancel', stop);
  }

  /** Starts an empty mask for an image of this size. */
  reset(width: number, height: number): void {
    this.canvas.width = width;
    this.canvas.height = height;
    this.painted = false;
    this.onChange();
  }

  get hasMask(): boolean {
    return this.painted;
  }

  /** The mask as a PNG data URL (white = may change), or null when nothing was painted. */
  toPng(): string | null {
    if (!this.painted) return null;
    const out = document.createElement('canvas');
    out.width = this.canvas.width;
    out.height = this.canvas.height;
    const ctx = out.getContext('2d')!;
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.drawImage(this.canvas, 0, 0);
    return out.toDataURL('image/png');
  }

  /** Paints a disc of radius 1/12 of the image's smaller side around an image-space point. */
  paint(x: number, y: number): void {
    const ctx = this.canvas.getContext('2d')!;
    const r = Math.max(1, Math.min(this.canvas.width, this.canvas.height) / 12);
    ctx.fillStyle = '#fff';
    ctx.beginPath();
    ctx.arc(x, y, r, 0, Math.PI * 2);
    ctx.fill();
    this.painted = true;
    this.onChange();
  }

  private paintAt(e: PointerEvent): void {
    const box = this.canvas.getBoundingClientRect();
    this.paint(((e.clientX - box.left) / box.width) * this.canvas.width, ((e.clientY - box.top) / box.height) * this.canvas.height);
  }
}
