import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32, crc32Table } from '../../src/engines/journal/crc32.js';
import { decodeRecord, encodeRecord, findNextRecord, HEADER_BYTES, RecordType } from '../../src/engines/journal/record.js';

describe('journal records', () => {
  it('crc32 gives the standard check value, with the table and with zlib, and continues across chunks', () => {
    const data = Buffer.from('123456789');
    assert.equal(crc32Table(data), 0xcbf43926);
    assert.equal(crc32(data), 0xcbf43926);
    assert.equal(crc32Table(data.subarray(4), crc32Table(data.subarray(0, 4))), 0xcbf43926);
    const random = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) & 0xff));
    assert.equal(crc32Table(random), crc32(random));
  });

  it('round-trips a record of any size, with a 12-byte header', () => {
    for (const payload of ['{}', '{"channel":"é","data":"' + 'x'.repeat(70_000) + '"}']) {
      const buf = encodeRecord(RecordType.event, payload);
      assert.equal(buf.length, HEADER_BYTES + Buffer.byteLength(payload));
      const r = decodeRecord(buf, 0);
      assert.ok(r.ok);
      assert.equal(r.type, RecordType.event);
      assert.equal(r.payload.toString('utf8'), payload);
      assert.equal(r.end, buf.length);
    }
  });

  it('detects a truncated record, a flipped bit anywhere and a bad magic', () => {
    const buf = encodeRecord(RecordType.event, '{"channel":"a","offset":1}');
    assert.deepEqual(decodeRecord(buf.subarray(0, 5), 0), { ok: false, reason: 'truncated' });
    assert.deepEqual(decodeRecord(buf.subarray(0, buf.length - 1), 0), { ok: false, reason: 'truncated' });
    for (let i = 2; i < buf.length; i++) {
      if (i >= 8 && i < 12) continue; // a length bit flip reads as truncated or crc, checked below
      const bad = Buffer.from(buf);
      bad[i]! ^= 0x10;
      assert.deepEqual(decodeRecord(bad, 0), { ok: false, reason: 'crc' }, `byte ${i}`);
    }
    const longer = Buffer.from(buf);
    longer[8]! ^= 0x01; // length + 1
    assert.equal(decodeRecord(longer, 0).ok, false);
    const magic = Buffer.from(buf);
    magic[0] = 0;
    assert.deepEqual(decodeRecord(magic, 0), { ok: false, reason: 'magic' });
  });

  it('finds the next valid record after damage, and none in a torn tail', () => {
    const a = encodeRecord(RecordType.event, '{"n":1}');
    const b = encodeRecord(RecordType.event, '{"n":2}');
    const damaged = Buffer.concat([a, b]);
    damaged[HEADER_BYTES + 2]! ^= 0xff; // inside a's payload
    assert.equal(decodeRecord(damaged, 0).ok, false);
    assert.equal(findNextRecord(damaged, 1), a.length);
    const torn = Buffer.concat([a, b.subarray(0, 9)]);
    assert.equal(findNextRecord(torn, a.length + 1), -1);
  });
});
