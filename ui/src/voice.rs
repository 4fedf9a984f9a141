//! Voice guidance (rule A3): the screen's instruction, spoken.
//!
//! The model decides what to say ([`crate::model::screen_clips`]); this
//! plays it. Clips are WAV files, `<voices>/<lang>/<id>.wav` (`cargo xtask
//! voices` records them with espeak-ng; a bank may put its own recordings
//! there). [`Voice`] owns one thread: [`Voice::say`] only queues, so the UI
//! never waits for a file or the sound card. What a new screen says cuts
//! off what the last one was still saying.
//!
//! Two outputs: ALSA (through rodio), and a WAV file for tests and for
//! kiosks without a sound card, which appends each clip at the set volume
//! and writes the clips' ids, one a line, to `<file>.clips` beside it. A
//! kiosk whose sound card cannot be opened logs why once and goes on
//! silent.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use crate::texts::{Clip, Lang};

/// Where the voice goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceOutput {
    /// The default ALSA device.
    Alsa,
    /// A WAV file (and its `.clips` list beside it).
    File(PathBuf),
}

impl VoiceOutput {
    /// `alsa`, or a file's path.
    pub fn parse(value: &str) -> VoiceOutput {
        match value {
            "alsa" => VoiceOutput::Alsa,
            path => VoiceOutput::File(PathBuf::from(path)),
        }
    }
}

/// Voice guidance's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceSettings {
    pub enabled: bool,
    /// From 0 (silent) to 1 (the clips as recorded).
    pub volume: f32,
    /// The clips' folder: `zh/` and `en/` with one WAV file per clip id.
    pub clips: PathBuf,
    pub output: VoiceOutput,
}

/// Where an installed kiosk keeps its clips.
pub const DEFAULT_CLIPS: &str = "/usr/share/kiosk-ui/voices";

impl Default for VoiceSettings {
    fn default() -> Self {
        VoiceSettings {
            enabled: false,
            volume: 0.8,
            clips: PathBuf::from(DEFAULT_CLIPS),
            output: VoiceOutput::Alsa,
        }
    }
}

/// One screen's clips, in its language.
#[derive(Debug)]
struct Utterance {
    lang: Lang,
    clips: Vec<Clip>,
}

/// The voice's thread; dropping it plays out nothing more, finishes the
/// file output and joins the thread.
#[derive(Debug)]
pub struct Voice {
    queue: Option<Sender<Utterance>>,
    thread: Option<JoinHandle<()>>,
}

impl Voice {
    /// A voice that says what it is given, or (voice guidance off) one
    /// that says nothing and starts no thread.
    pub fn start(settings: &VoiceSettings) -> Voice {
        if !settings.enabled {
            return Voice {
                queue: None,
                thread: None,
            };
        }
        let (queue, utterances) = channel();
        let settings = settings.clone();
        let thread = std::thread::Builder::new()
            .name("voice".into())
            .spawn(move || speak(settings, utterances));
        match thread {
            Ok(thread) => Voice {
                queue: Some(queue),
                thread: Some(thread),
            },
            Err(e) => {
                tracing::warn!(error = %e, "voice guidance: cannot start its thread; the kiosk goes on silent");
                Voice {
                    queue: None,
                    thread: None,
                }
            }
        }
    }

    /// Say `clips` in `lang`, cutting off what is still being said (an
    /// empty list only cuts off). Returns at once.
    pub fn say(&self, lang: Lang, clips: &[Clip]) {
        if let Some(queue) = &self.queue {
            let _ = queue.send(Utterance {
                lang,
                clips: clips.to_vec(),
            });
        }
    }
}

impl Drop for Voice {
    fn drop(&mut self) {
        // The thread ends once the queue is closed and drained.
        self.queue.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("voice guidance's thread panicked");
        }
    }
}

/// The voice's thread: each utterance in turn, until the queue closes.
fn speak(settings: VoiceSettings, utterances: Receiver<Utterance>) {
    let mut output = match &settings.output {
        VoiceOutput::Alsa => Output::Alsa(AlsaOutput::default()),
        VoiceOutput::File(path) => Output::File(FileOutput::new(path.clone())),
    };
    while let Ok(utterance) = utterances.recv() {
        let clips: Vec<(Clip, Samples)> = utterance
            .clips
            .iter()
            .filter_map(|&clip| {
                let path = clip_path(&settings.clips, utterance.lang, clip);
                match Samples::read(&path) {
                    Ok(samples) => Some((clip, samples)),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "voice clip missing or unreadable: not said");
                        None
                    }
                }
            })
            .collect();
        output.play(utterance.lang, &clips, settings.volume.clamp(0.0, 1.0));
    }
    output.finish();
}

/// `<voices>/<lang>/<id>.wav`.
pub fn clip_path(voices: &Path, lang: Lang, clip: Clip) -> PathBuf {
    voices.join(lang.code()).join(format!("{}.wav", clip.id()))
}

/// A clip's samples, from -1 to 1, interleaved.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    pub channels: u16,
    pub sample_rate: u32,
    pub data: Vec<f32>,
}

impl Samples {
    /// Read a WAV file (integer or float samples, any rate and channels).
    pub fn read(path: &Path) -> Result<Samples, hound::Error> {
        let mut reader = hound::WavReader::open(path)?;
        let spec = reader.spec();
        let data = match spec.sample_format {
            hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>()?,
            hound::SampleFormat::Int => {
                let full_scale = (1_i64 << (spec.bits_per_sample - 1)) as f32;
                reader
                    .samples::<i32>()
                    .map(|s| s.map(|s| s as f32 / full_scale))
                    .collect::<Result<_, _>>()?
            }
        };
        Ok(Samples {
            channels: spec.channels,
            sample_rate: spec.sample_rate,
            data,
        })
    }
}

enum Output {
    Alsa(AlsaOutput),
    File(FileOutput),
}

impl Output {
    fn play(&mut self, lang: Lang, clips: &[(Clip, Samples)], volume: f32) {
        match self {
            Output::Alsa(alsa) => alsa.play(clips, volume),
            Output::File(file) => {
                if let Err(e) = file.append(lang, clips, volume) {
                    tracing::warn!(path = %file.path.display(), error = %e, "voice guidance: cannot write the voice file");
                }
            }
        }
    }

    fn finish(self) {
        if let Output::File(file) = self {
            let path = file.path.clone();
            if let Err(e) = file.finish() {
                tracing::warn!(path = %path.display(), error = %e, "voice guidance: cannot finish the voice file");
            }
        }
    }
}

/// ALSA's default device, opened at the first clip. On a kiosk without
/// a sound card: one log line, then silence until kiosk-ui restarts (no
/// retry at each screen: alsa-lib writes its own lines to standard error
/// at every failed open, which would fill the journal).
#[derive(Default)]
struct AlsaOutput {
    device: Option<rodio::MixerDeviceSink>,
    /// What plays now; dropping it stops it.
    player: Option<rodio::Player>,
    failed: bool,
}

impl AlsaOutput {
    fn play(&mut self, clips: &[(Clip, Samples)], volume: f32) {
        // Cut off the last screen's clips.
        self.player.take();
        if clips.is_empty() || self.failed {
            return;
        }
        if self.device.is_none() {
            match rodio::DeviceSinkBuilder::open_default_sink() {
                Ok(mut device) => {
                    device.log_on_drop(false);
                    tracing::info!("voice guidance: playing through ALSA");
                    self.device = Some(device);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "voice guidance: no ALSA sound output; the kiosk goes on without voice");
                    self.failed = true;
                    return;
                }
            }
        }
        let Some(device) = &self.device else { return };
        let player = rodio::Player::connect_new(device.mixer());
        player.set_volume(volume);
        for (clip, samples) in clips {
            let (Some(channels), Some(rate)) = (
                std::num::NonZero::new(samples.channels),
                std::num::NonZero::new(samples.sample_rate),
            ) else {
                tracing::warn!(
                    clip = clip.id(),
                    "voice clip without channels or rate: not said"
                );
                continue;
            };
            player.append(rodio::buffer::SamplesBuffer::new(
                channels,
                rate,
                samples.data.clone(),
            ));
        }
        self.player = Some(player);
    }
}

/// The WAV file output: clips appended in the order said, 16-bit, in the
/// first clip's rate and channels; `<file>.clips` lists them
/// (`zh/place_card`). Both are created at the first clip, so a kiosk that
/// said nothing leaves no file.
struct FileOutput {
    path: PathBuf,
    open: Option<(hound::WavWriter<BufWriter<File>>, File)>,
}

impl FileOutput {
    fn new(path: PathBuf) -> FileOutput {
        FileOutput { path, open: None }
    }

    /// The list of clips beside a voice file.
    fn list_path(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".clips");
        PathBuf::from(name)
    }

    fn append(&mut self, lang: Lang, clips: &[(Clip, Samples)], volume: f32) -> anyhow::Result<()> {
        for (clip, samples) in clips {
            if self.open.is_none() {
                let spec = hound::WavSpec {
                    channels: samples.channels,
                    sample_rate: samples.sample_rate,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                };
                let wav = hound::WavWriter::create(&self.path, spec)?;
                let list = File::create(Self::list_path(&self.path))?;
                self.open = Some((wav, list));
            }
            let Some((wav, list)) = &mut self.open else {
                continue;
            };
            let spec = wav.spec();
            if (spec.channels, spec.sample_rate) != (samples.channels, samples.sample_rate) {
                tracing::warn!(
                    clip = clip.id(),
                    "voice clip's rate or channels differ from the voice file's: not written"
                );
                continue;
            }
            for &s in &samples.data {
                // 32768: a 16-bit clip at full volume is copied exactly.
                let scaled = (s * volume * 32768.0).round().clamp(-32768.0, 32767.0);
                wav.write_sample(scaled as i16)?;
            }
            writeln!(list, "{}/{}", lang.code(), clip.id())?;
        }
        if let Some((wav, list)) = &mut self.open {
            // A valid file after each screen, not only at the end.
            wav.flush()?;
            list.flush()?;
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        if let Some((wav, _)) = self.open {
            wav.finalize()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short clip: `n` samples of `value` at 22050 Hz, mono, 16-bit
    /// (espeak-ng's format).
    fn write_clip(voices: &Path, lang: Lang, clip: Clip, value: i16, n: usize) {
        let path = clip_path(voices, lang, clip);
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("folder");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 22050,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).expect("clip");
        for _ in 0..n {
            w.write_sample(value).expect("sample");
        }
        w.finalize().expect("clip written");
    }

    fn file_settings(dir: &Path, volume: f32) -> (VoiceSettings, PathBuf) {
        let out = dir.join("out.wav");
        let settings = VoiceSettings {
            enabled: true,
            volume,
            clips: dir.join("voices"),
            output: VoiceOutput::File(out.clone()),
        };
        (settings, out)
    }

    #[test]
    fn the_file_output_appends_each_clip_at_the_volume_and_lists_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let voices = dir.path().join("voices");
        write_clip(&voices, Lang::Zh, Clip::PlaceCard, 1000, 30);
        write_clip(&voices, Lang::Zh, Clip::Applied, -2000, 20);
        write_clip(&voices, Lang::En, Clip::TakeCard, 3000, 10);
        let (settings, out) = file_settings(dir.path(), 0.5);
        let voice = Voice::start(&settings);
        voice.say(Lang::Zh, &[Clip::PlaceCard]);
        voice.say(Lang::Zh, &[]);
        voice.say(Lang::Zh, &[Clip::Applied]);
        voice.say(Lang::En, &[Clip::TakeCard]);
        drop(voice);
        let written = Samples::read(&out).expect("the voice file");
        let expected: Vec<f32> = [(500, 30), (-1000, 20), (1500, 10)]
            .iter()
            .flat_map(|&(v, n)| std::iter::repeat_n(v as f32 / 32768.0, n))
            .collect();
        assert_eq!(written.data, expected);
        assert_eq!((written.channels, written.sample_rate), (1, 22050));
        let list = std::fs::read_to_string(FileOutput::list_path(&out)).expect("the list");
        assert_eq!(list, "zh/place_card\nzh/applied\nen/take_card\n");
    }

    #[test]
    fn a_missing_clip_is_skipped_and_the_others_said() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_clip(&dir.path().join("voices"), Lang::En, Clip::TakeCard, 1, 5);
        let (settings, out) = file_settings(dir.path(), 1.0);
        let voice = Voice::start(&settings);
        voice.say(Lang::En, &[Clip::Applied, Clip::TakeCard]);
        drop(voice);
        let list = std::fs::read_to_string(FileOutput::list_path(&out)).expect("the list");
        assert_eq!(list, "en/take_card\n");
        assert_eq!(Samples::read(&out).expect("voice file").data.len(), 5);
    }

    #[test]
    fn voice_off_starts_no_thread_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_clip(&dir.path().join("voices"), Lang::Zh, Clip::PlaceCard, 1, 5);
        let (mut settings, out) = file_settings(dir.path(), 1.0);
        settings.enabled = false;
        let voice = Voice::start(&settings);
        assert!(voice.thread.is_none());
        voice.say(Lang::Zh, &[Clip::PlaceCard]);
        drop(voice);
        assert!(!out.exists());
        assert!(!FileOutput::list_path(&out).exists());
    }

    /// This machine has no sound card: opening ALSA fails, which is
    /// logged, and saying goes on returning (real hardware plays).
    #[test]
    fn alsa_output_without_a_sound_card_fails_soft() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_clip(&dir.path().join("voices"), Lang::Zh, Clip::PlaceCard, 1, 5);
        let settings = VoiceSettings {
            enabled: true,
            volume: 1.0,
            clips: dir.path().join("voices"),
            output: VoiceOutput::Alsa,
        };
        let voice = Voice::start(&settings);
        voice.say(Lang::Zh, &[Clip::PlaceCard]);
        voice.say(Lang::Zh, &[Clip::PlaceCard]);
        drop(voice);
    }

    #[test]
    fn output_is_alsa_or_a_file() {
        assert_eq!(VoiceOutput::parse("alsa"), VoiceOutput::Alsa);
        assert_eq!(
            VoiceOutput::parse("/tmp/voice.wav"),
            VoiceOutput::File("/tmp/voice.wav".into())
        );
    }
}
