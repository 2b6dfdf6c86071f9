//! A view's state on disk: one Arrow IPC file per snapshot (full or delta),
//! under `state/<view id>/<checkpoint seq>.arrow`, its CRC-32 kept in the
//! manifest.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;

use super::manifest::StateFile;
use super::{CheckpointError, io_error, write_durably};
use crate::state::StateSnapshot;

/// The directory of view `id`'s state files.
pub fn view_dir(root: &Path, id: u64) -> PathBuf {
    root.join("state").join(id.to_string())
}

/// Writes `snapshot` as checkpoint `seq`'s file of view `id`.
pub fn write(root: &Path, id: u64, seq: u64, snapshot: &StateSnapshot) -> Result<StateFile, CheckpointError> {
    write_batches(root, id, seq, std::slice::from_ref(&snapshot.batch), snapshot.full)
}

/// Writes `batches` (of one shape; at least one) as checkpoint `seq`'s
/// file of relation `id`. Their columns are all written as nullable, so
/// that batches that differ only there go in one file.
pub fn write_batches(
    root: &Path,
    id: u64,
    seq: u64,
    batches: &[RecordBatch],
    full: bool,
) -> Result<StateFile, CheckpointError> {
    let Some(first) = batches.first() else {
        return Err(CheckpointError::Encode("a state file needs at least one batch".into()));
    };
    let fields = first.schema().fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect::<Vec<_>>();
    let schema = std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
    let dir = view_dir(root, id);
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    let mut bytes = Vec::new();
    {
        let mut writer = FileWriter::try_new(&mut bytes, &schema).map_err(CheckpointError::encode)?;
        for batch in batches {
            let batch =
                RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(CheckpointError::encode)?;
            writer.write(&batch).map_err(CheckpointError::encode)?;
        }
        writer.finish().map_err(CheckpointError::encode)?;
    }
    let name = format!("{seq:012}.arrow");
    write_durably(&dir.join(&name), &bytes)?;
    Ok(StateFile {
        name,
        bytes: bytes.len() as u64,
        crc32: crc32fast::hash(&bytes),
        rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
        full,
    })
}

/// Reads one state file, checking its size and checksum.
pub fn read(root: &Path, id: u64, file: &StateFile) -> Result<StateSnapshot, CheckpointError> {
    let path = view_dir(root, id).join(&file.name);
    let corrupt = |what: String| CheckpointError::Corrupt { path: path.clone(), what };
    let bytes = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
    if bytes.len() as u64 != file.bytes {
        return Err(corrupt(format!("it has {} bytes, the checkpoint wrote {}", bytes.len(), file.bytes)));
    }
    if crc32fast::hash(&bytes) != file.crc32 {
        return Err(corrupt("its checksum does not match".into()));
    }
    let reader = FileReader::try_new(Cursor::new(bytes), None).map_err(|e| corrupt(e.to_string()))?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| corrupt(e.to_string()))?;
    let batch = match batches.len() {
        0 => RecordBatch::new_empty(schema),
        1 => batches.into_iter().next().unwrap_or_else(|| RecordBatch::new_empty(schema.clone())),
        _ => datafusion::arrow::compute::concat_batches(&schema, &batches).map_err(|e| corrupt(e.to_string()))?,
    };
    Ok(StateSnapshot { batch, full: file.full })
}
