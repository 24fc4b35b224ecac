// Where kafkajs puts a record keyed by an MSISDN:  node partitions.js 12 < ../msisdns.txt
// Columns: kafkajs's DefaultPartitioner (the default since 2.0.0), and its LegacyPartitioner (1.x's default).
// Not part of CI: ../compare.py runs it by hand and compares with Java.
const { Partitioners } = require('kafkajs')

const partitions = parseInt(process.argv[2], 10)
const partitionMetadata = Array.from({ length: partitions }, (_, id) => ({ partitionId: id, leader: 0 }))
const chosen = [Partitioners.DefaultPartitioner(), Partitioners.LegacyPartitioner()]
const msisdns = require('fs').readFileSync(0, 'utf8').split(/\s+/).filter(Boolean)
console.log('msisdn kafkajs_default kafkajs_legacy')
for (const msisdn of msisdns) {
  const row = chosen.map(partition => partition({ topic: 't', partitionMetadata, message: { key: msisdn } }))
  console.log([msisdn, ...row].join(' '))
}
