import DS2Core
import Foundation
import Shards

/// Draws one record's spectrogram as the trainer sees it (normalized) into `output` (PNG):
/// time and frequency axes, the transcript as title, and for an augmented record its
/// provenance (speed, noise and SNR, gain, reverberation) as caption. With `clean` (the
/// clean dataset the augmented one was made from), the clean source is drawn above it.
/// - Throws: `PlotError` for an id in no split (naming the splits searched), or a file
///   that cannot be written; `DatasetError`/`LMDBError` for a damaged dataset.
public func plotRecord(dataset path: String, id: String, clean cleanPath: String? = nil, output: String) throws {
  let dataset = try Dataset(directory: path)
  let record = try findRecord(id, in: dataset, path: path)
  var panels = [(record, caption(record.infoJSON), dataset.manifest.features)]
  if let cleanPath {
    guard let source = provenance(record.infoJSON)?["source"].flatMap({ value -> String? in
      if case .string(let text) = value { return text }
      return nil
    }) else {
      throw PlotError(
        "\(path): record \(quoted(id)) is not an augmented copy (its info has no augmentation source); "
          + "--clean draws an augmented record's clean source beside it")
    }
    let clean = try Dataset(directory: cleanPath)
    panels.insert((try findRecord(source, in: clean, path: cleanPath), "the clean source", clean.manifest.features), at: 0)
  }
  let longest = panels.map(\.0.frames).max() ?? 1
  let width = max(600, min(1400, 2 * longest))
  let panelHeight = 2 * min(record.bins, 200)
  let captions = panels.map { shown, note, _ in "\(shown.id)" + (note.map { ": " + $0 } ?? "") }
  // Below each panel: the time axis, then the caption's lines; the next title above the next.
  let gaps = captions.map { 110 + 20 * max(2, captionLines($0, width: width + 40).count) }
  var canvas = Canvas(width: width + 170, height: zip(gaps, panels).reduce(30) { $0 + panelHeight + $1.0 })
  var top = 80
  for (index, (shown, _, features)) in panels.enumerated() {
    drawSpectrogram(
      shown.features.values, frames: shown.frames, bins: shown.bins,
      hopSeconds: Double(features.hopSamples) / Double(features.sampleRateHertz), sampleRateHertz: features.sampleRateHertz,
      on: &canvas, x: 120, y: top,
      width: max(1, width * shown.frames / longest), height: panelHeight,
      title: Canvas.fitting(shown.transcript, width: width + 40), caption: captions[index])
    top += panelHeight + gaps[index]
  }
  try canvas.writePNG(to: output)
}

/// Duration histograms, one panel per split: what SortaGrad walks through in epoch 1.
/// - Throws: `DatasetError` for a dataset that cannot be read, `PlotError` for the file.
public func plotLengths(dataset path: String, output: String) throws {
  let dataset = try Dataset(directory: path)
  let features = dataset.manifest.features
  let splits = try dataset.manifest.splits.map { split in
    (split.name, try dataset.index(split: split.name).map { Double($0.sampleCount) / Double(features.sampleRateHertz) })
  }
  try lengthsPicture(splits: splits, title: "\(URL(fileURLWithPath: path).lastPathComponent): utterance lengths per split")
    .writePNG(to: output)
}

/// Training curves of a run folder from its `metrics.jsonl`: training loss per input frame
/// per step (the step's mean loss per utterance over its mean frames at DS2's 10 ms hop),
/// and the dev loss, CER and WER per epoch.
/// - Throws: `PlotError` when the folder has no metrics (naming it) or the file cannot be written.
public func plotRun(run: String, output: String) throws {
  let path = run + "/metrics.jsonl"
  var status = stat()
  guard stat(run, &status) == 0 else { throw PlotError("\(run): no such file or folder") }
  guard RegularFile.exists(path) else {
    if RegularFile.exists(run + "/manifest.json") {
      throw PlotError(
        "\(run) is a dataset: give --record ID (a spectrogram) or --lengths (length histograms); training curves need a run folder")
    }
    throw PlotError("\(run): no metrics.jsonl — not a training run folder, or the run has not taken a step yet")
  }
  let bytes = try RegularFile.read(path, maxBytes: 1 << 30)
  var steps: [(step: Double, loss: Double)] = []
  var evaluations: [(epoch: Double, loss: Double, cer: Double, wer: Double)] = []
  var unreadable: [Int] = []
  var notFinite = 0
  for (lineIndex, line) in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    .enumerated() where !line.isEmpty
  {
    guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
      unreadable.append(lineIndex + 1)
      continue
    }
    func number(_ key: String) -> Double? { (object[key] as? NSNumber)?.doubleValue }
    if object["type"] as? String == "step", let step = number("step"), let loss = number("loss"),
      let utterances = number("utterances"), let audio = number("audioSeconds"), audio > 0
    {
      let perFrame = loss / (audio * 100 / utterances)
      if step.isFinite && perFrame.isFinite { steps.append((step, perFrame)) } else { notFinite += 1 }
    } else if object["type"] as? String == "eval", let epoch = number("epoch"), let loss = number("loss"),
      let cer = number("cer"), let wer = number("wer")
    {
      if [epoch, loss, cer, wer].allSatisfy(\.isFinite) { evaluations.append((epoch, loss, cer, wer)) }
    }
  }
  guard !steps.isEmpty else {
    throw PlotError(
      "\(path): no training step recorded yet"
        + (unreadable.isEmpty ? "" : " (\(unreadable.count) line(s) are not JSON objects, the first is line \(unreadable[0]))")
        + (notFinite == 0 ? "" : " (\(notFinite) step(s) with a step or loss per frame that is not a finite number)"))
  }
  try curvesPicture(steps: steps, evaluations: evaluations, title: "\(URL(fileURLWithPath: run).lastPathComponent): training")
    .writePNG(to: output)
}

/// The record `id` of any split of `dataset`, normalized.
func findRecord(_ id: String, in dataset: Dataset, path: String) throws -> ShardRecord {
  for split in dataset.manifest.splits {
    if let location = try dataset.index(split: split.name).first(where: { $0.key.count > 4 && String(decoding: $0.key[4...], as: UTF8.self) == id }) {
      return try dataset.record(split: split.name, at: location)
    }
  }
  throw PlotError(
    "\(path): no record \(quoted(id)) in splits \(dataset.manifest.splits.map(\.name).joined(separator: ", "))")
}

/// `text` in double quotes, with quotes, backslashes and control characters escaped (as JSON).
func quoted(_ text: String) -> String {
  guard let data = try? JSONEncoder().encode(text) else { return "\"\(text)\"" }
  return String(decoding: data, as: UTF8.self)
}

/// An augmented record's provenance (its info's `augmentation` object), if any.
func provenance(_ infoJSON: String) -> [String: JSONValue]? {
  guard !infoJSON.isEmpty, let info = try? JSONDecoder().decode(JSONValue.self, from: Data(infoJSON.utf8)),
    case .object(let fields) = info, case .object(let augmentation)? = fields["augmentation"]
  else { return nil }
  return augmentation
}

/// "speed 1.1, noise noise/x.wav at 12.5 dB SNR, gain -3 dB, reverberation" from the info.
func caption(_ infoJSON: String) -> String? {
  guard let plan = provenance(infoJSON) else { return nil }
  func number(_ key: String) -> Double? {
    if case .number(let value)? = plan[key] { return value }
    return nil
  }
  var parts: [String] = []
  if let speed = number("speed") { parts.append("speed \(tickLabel(speed))") }
  if case .object(let noise)? = plan["noise"], case .string(let file)? = noise["file"] {
    parts.append("noise \(URL(fileURLWithPath: file).lastPathComponent)" + (number("snrDecibels").map { String(format: " at %.1f dB SNR", $0) } ?? ""))
  }
  if case .array(let babble)? = plan["babble"], !babble.isEmpty {
    parts.append("babble of \(babble.count)" + (number("babbleSnrDecibels").map { String(format: " at %.1f dB", $0) } ?? ""))
  }
  if let gain = number("gainDecibels") { parts.append(String(format: "gain %.1f dB", gain)) }
  if plan["impulseResponse"] != nil { parts.append("reverberation") }
  return parts.isEmpty ? "augmented copy" : parts.joined(separator: ", ")
}
