// numpy files written in the browser, so the dashboard can upload the tutorial's arrays (§3.2) itself:
// .npy (format 1.0, little-endian float32) and .npz (a zip of .npy members, stored, with CRC-32s that the
// server checks).

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// A Float32Array as a .npy file of the given shape.
export function npy(values, shape) {
  const dims = shape.join(", ") + (shape.length === 1 ? "," : "");
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  // The magic, version and length take 10 bytes; numpy pads the header so the data starts 64-aligned.
  header += " ".repeat((64 - ((10 + header.length + 1) % 64)) % 64) + "\n";
  const out = new Uint8Array(10 + header.length + values.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 10 + header.length);
  return out;
}

// {name: Uint8Array of a .npy} as the bytes of a .npz (what np.savez writes, without compression).
export function npz(members) {
  const encoder = new TextEncoder();
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const [name, data] of Object.entries(members)) {
    const fileName = encoder.encode(`${name}.npy`);
    const crc = crc32(data);
    const local = new Uint8Array(30 + fileName.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(12, 0x21, true); // 1980-01-01
    lv.setUint32(14, crc, true);
    lv.setUint32(18, data.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, fileName.length, true);
    local.set(fileName, 30);
    const central = new Uint8Array(46 + fileName.length);
    const cv = new DataView(central.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(14, 0x21, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, fileName.length, true);
    cv.setUint32(42, offset, true);
    central.set(fileName, 46);
    locals.push(local, data);
    centrals.push(central);
    offset += local.length + data.length;
  }
  const centralSize = centrals.reduce((sum, part) => sum + part.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, centrals.length, true);
  ev.setUint16(10, centrals.length, true);
  ev.setUint32(12, centralSize, true);
  ev.setUint32(16, offset, true);
  return new Blob([...locals, ...centrals, end], { type: "application/octet-stream" });
}

function random(rows, columns) {
  const values = new Float32Array(rows * columns);
  for (let i = 0; i < values.length; i++) values[i] = Math.random();
  return npy(values, [rows, columns]);
}

function oneHot(rows, classes) {
  const values = new Float32Array(rows * classes);
  for (let row = 0; row < rows; row++) values[row * classes + Math.floor(Math.random() * classes)] = 1;
  return npy(values, [rows, classes]);
}

// The tutorial's §3.2 data: np.random.random((1000, 72)) with 10-class one-hot labels, plus 200 rows to
// validate on, as one .npz with the arrays train_x, train_y, val_x, val_y.
export function tutorialArrays(rows = 1000, validationRows = 200) {
  return npz({
    train_x: random(rows, 72), train_y: oneHot(rows, 10),
    val_x: random(validationRows, 72), val_y: oneHot(validationRows, 10),
  });
}
