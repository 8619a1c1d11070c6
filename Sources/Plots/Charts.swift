import DS2Core
import Foundation

/// A rectangle of the canvas that maps data coordinates to pixels, with axes, ticks and
/// labels drawn around it.
struct Panel {
  var x: Int
  var y: Int
  var width: Int
  var height: Int
  var xRange: ClosedRange<Double>
  var yRange: ClosedRange<Double>

  func px(_ value: Double) -> Int {
    x + Self.offset(value, in: xRange, pixels: width)
  }

  func py(_ value: Double) -> Int {
    y + height - 1 - Self.offset(value, in: yRange, pixels: height)
  }

  /// Pixels from the start of an axis of `pixels` to `value`, kept within a few axis
  /// lengths of it (so that any value, however far out or not finite, gives a position
  /// and a line to it stays short).
  static func offset(_ value: Double, in range: ClosedRange<Double>, pixels: Int) -> Int {
    let span = range.upperBound - range.lowerBound
    let fraction = (value - range.lowerBound) / (span > 0 && span.isFinite ? span : 1)
    let limit = Double(4 * max(1, pixels))
    guard fraction.isFinite else { return value > range.upperBound ? Int(limit) : value < range.lowerBound ? -Int(limit) : 0 }
    return Int(max(-limit, min(limit, (fraction * Double(pixels - 1)).rounded())))
  }

  /// Frame, ticks with labels (`xLabel` under, `yLabel` above the axis) and a title.
  func drawAxes(on canvas: inout Canvas, title: String, xLabel: String, yLabel: String, grid: Bool = true) {
    for value in niceTicks(xRange) {
      let column = px(value)
      if grid { canvas.line(column, y, column, y + height - 1, color: .lightGrey) }
      canvas.line(column, y + height, column, y + height + 4, color: .black)
      let label = tickLabel(value)
      canvas.text(label, x: column - Canvas.textWidth(label) / 2, y: y + height + 8)
    }
    for value in niceTicks(yRange) {
      let row = py(value)
      if grid { canvas.line(x, row, x + width - 1, row, color: .lightGrey) }
      canvas.line(x - 5, row, x - 1, row, color: .black)
      let label = tickLabel(value)
      canvas.text(label, x: x - 8 - Canvas.textWidth(label), y: row - 7)
    }
    canvas.line(x - 1, y, x - 1, y + height, color: .black)
    canvas.line(x - 1, y + height, x + width, y + height, color: .black)
    canvas.text(xLabel, x: x + width / 2 - Canvas.textWidth(xLabel) / 2, y: y + height + 28)
    canvas.text(yLabel, x: max(4, x - 8 - Canvas.textWidth(yLabel) / 2), y: y - 26)
    canvas.text(title, x: x, y: y - 54, scale: 2)
  }
}

/// About five round tick values inside `range`.
func niceTicks(_ range: ClosedRange<Double>) -> [Double] {
  let span = range.upperBound - range.lowerBound
  guard span > 0, span.isFinite else { return [range.lowerBound] }
  let rough = span / 5
  let magnitude = pow(10, floor(log10(rough)))
  let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
  var ticks: [Double] = []
  var value = ceil(range.lowerBound / step) * step
  while value <= range.upperBound + step * 1e-9 && ticks.count < 20 {
    ticks.append(abs(value) < step * 1e-9 ? 0 : value)
    value += step
  }
  return ticks
}

func tickLabel(_ value: Double) -> String {
  if value == value.rounded() && abs(value) < 1e7 { return String(Int(value)) }
  return abs(value) >= 0.1 ? String(format: "%.1f", value) : String(format: "%.2g", value)
}

/// Draws `values` (`frames × bins`, row-major) as a spectrogram with time (seconds) across
/// and frequency (kHz) up, colored by viridis between the 1st and 99th percentile.
func drawSpectrogram(
  _ values: [Float], frames: Int, bins: Int, hopSeconds: Double, sampleRateHertz: Int, on canvas: inout Canvas,
  x: Int, y: Int, width: Int, height: Int, title: String, caption: String?
) {
  let panel = Panel(
    x: x, y: y, width: width, height: height, xRange: 0...(Double(frames) * hopSeconds),
    yRange: 0...(Double(sampleRateHertz) / 2000))
  let sorted = values.filter(\.isFinite).sorted()
  let low = Double(sorted.isEmpty ? 0 : sorted[sorted.count / 100])
  let high = Double(sorted.isEmpty ? 1 : sorted[(sorted.count - 1) * 99 / 100])
  for column in 0..<width {
    let frame = min(frames - 1, column * frames / width)
    for row in 0..<height {
      let bin = min(bins - 1, (height - 1 - row) * bins / height)
      let value = Double(values[frame * bins + bin])
      canvas.set(x + column, y + row, .viridis(high > low ? (value - low) / (high - low) : 0.5))
    }
  }
  panel.drawAxes(on: &canvas, title: title, xLabel: "time (s)", yLabel: "kHz", grid: false)
  for (index, line) in captionLines(caption, width: canvas.width - x - 10).enumerated() {
    canvas.text(line, x: x, y: y + height + 48 + 20 * index)
  }
}

/// A spectrogram's caption broken into lines of `width` pixels, at ", " where it can.
func captionLines(_ caption: String?, width: Int) -> [String] {
  guard let caption, !caption.isEmpty else { return [] }
  return Canvas.wrapped(caption, width: max(60, width), separator: ", ")
}

/// One panel per split: the count of utterances per length bucket (0.25 s or wider).
func lengthsPicture(splits: [(name: String, seconds: [Double])], title: String) -> Canvas {
  let panelHeight = 200
  let panelWidth = 900
  var canvas = Canvas(width: panelWidth + 160, height: 100 + splits.count * (panelHeight + 120))
  canvas.text(title, x: 20, y: 16, scale: 2)
  let longest = splits.flatMap(\.seconds).max() ?? 1
  let bucket = max(0.25, (longest / 60 * 4).rounded(.up) / 4)
  let buckets = max(1, Int((longest / bucket).rounded(.up)))
  for (index, split) in splits.enumerated() {
    var counts = [Int](repeating: 0, count: buckets)
    for value in split.seconds { counts[min(buckets - 1, Int(value / bucket))] += 1 }
    let panel = Panel(
      x: 110, y: 120 + index * (panelHeight + 120), width: panelWidth, height: panelHeight,
      xRange: 0...(Double(buckets) * bucket), yRange: 0...Double(max(1, counts.max() ?? 1)))
    panel.drawAxes(
      on: &canvas,
      title: String(format: "%@: %d utterances, %.2f h", split.name, split.seconds.count, split.seconds.reduce(0, +) / 3600),
      xLabel: "utterance length (s)", yLabel: "utterances")
    let color = Color.series[index % Color.series.count]
    for (b, count) in counts.enumerated() where count > 0 {
      let left = panel.px(Double(b) * bucket)
      let right = panel.px(Double(b + 1) * bucket)
      let top = panel.py(Double(count))
      canvas.fill(x: left + 1, y: top, width: max(1, right - left - 1), height: panel.y + panelHeight - top, color: color)
    }
  }
  return canvas
}

/// Training loss per frame per step, and the dev loss, CER and WER per epoch.
func curvesPicture(
  steps: [(step: Double, loss: Double)], evaluations: [(epoch: Double, loss: Double, cer: Double, wer: Double)], title: String
) -> Canvas {
  var canvas = Canvas(width: 1500, height: 540)
  canvas.text(title, x: 20, y: 16, scale: 2)
  func plotLines(_ panel: Panel, _ series: [[(Double, Double)]], on canvas: inout Canvas) {
    for (index, points) in series.enumerated() {
      let color = Color.series[index % Color.series.count]
      for (a, b) in zip(points, points.dropFirst()) {
        canvas.line(panel.px(a.0), panel.py(a.1), panel.px(b.0), panel.py(b.1), color: color, thickness: 2)
      }
      for point in points where points.count < 60 {
        canvas.fill(x: panel.px(point.0) - 3, y: panel.py(point.1) - 3, width: 7, height: 7, color: color)
      }
    }
  }
  func range(_ values: [Double], floor: Double? = nil) -> ClosedRange<Double> {
    let finite = values.filter(\.isFinite)
    let low = floor ?? (finite.min() ?? 0)
    let high = finite.max() ?? 1
    return low...(high > low ? high : low + 1)
  }
  let trainPanel = Panel(
    x: 110, y: 130, width: 380, height: 300, xRange: range(steps.map(\.step), floor: 0), yRange: range(steps.map(\.loss), floor: 0))
  trainPanel.drawAxes(on: &canvas, title: "training loss per frame", xLabel: "step", yLabel: "loss")
  plotLines(trainPanel, [steps.map { ($0.step, $0.loss) }], on: &canvas)
  let devPanel = Panel(
    x: 610, y: 130, width: 360, height: 300, xRange: range(evaluations.map(\.epoch), floor: 0),
    yRange: range(evaluations.map(\.loss), floor: 0))
  devPanel.drawAxes(on: &canvas, title: "dev loss per utterance", xLabel: "epoch", yLabel: "loss")
  let errorPanelX = 1090
  if evaluations.isEmpty {
    for x in [devPanel.x, errorPanelX] {
      canvas.text("no dev evaluation yet", x: x + 20, y: devPanel.y + devPanel.height / 2 - 8, color: Color(120, 120, 120))
    }
  }
  plotLines(devPanel, [evaluations.map { ($0.epoch, $0.loss) }], on: &canvas)
  let errorPanel = Panel(
    x: errorPanelX, y: 130, width: 360, height: 300, xRange: range(evaluations.map(\.epoch), floor: 0), yRange: 0...100)
  errorPanel.drawAxes(on: &canvas, title: "dev CER and WER", xLabel: "epoch", yLabel: "%")
  plotLines(errorPanel, [evaluations.map { ($0.epoch, 100 * $0.cer) }, evaluations.map { ($0.epoch, 100 * $0.wer) }], on: &canvas)
  canvas.fill(x: 1100, y: 500, width: 14, height: 14, color: Color.series[0])
  canvas.text("CER", x: 1120, y: 500)
  canvas.fill(x: 1180, y: 500, width: 14, height: 14, color: Color.series[1])
  canvas.text("WER", x: 1200, y: 500)
  return canvas
}
