// Send one command to the ecash worker and wait for its result (docs/contracts.md), with kafkajs.
//
//   node dist/main.js --msisdn 08131234567 --amount 100000 [--type charge|credit] [--trace T] [--timeout 60]
//
// Brokers and topics: --bootstrap, --commands, --results, or ECASH_KAFKA_BOOTSTRAP_SERVERS,
// ECASH_COMMANDS_TOPIC, ECASH_RESULTS_TOPIC (the worker's own settings), else the README's defaults.
// Prints every result for the trace number on stdout (one JSON per line); exit 0 on a final result,
// 1 on timeout (an interim `unresolved` result is not final: an operator closes it later), 2 on an error.
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { Kafka, KafkaJSError, logLevel, Partitioners } from 'kafkajs'

// The command contract (schemas/command.schema.json). `amount` is a decimal string, never a number.
interface Command {
  schema_version: 1
  type: 'charge' | 'credit'
  trace_number: string
  msisdn: string
  amount: string
}

// The fields of a result this program reads; a consumer must ignore the others.
interface Result {
  trace_number: string
  outcome: string
}

async function main(): Promise<number> {
  const { values: args } = parseArgs({
    options: {
      bootstrap: { type: 'string', default: process.env.ECASH_KAFKA_BOOTSTRAP_SERVERS || '127.0.0.1:19092' },
      commands: { type: 'string', default: process.env.ECASH_COMMANDS_TOPIC || 'ecash.commands' },
      results: { type: 'string', default: process.env.ECASH_RESULTS_TOPIC || 'ecash.results' },
      type: { type: 'string', default: 'charge' },
      msisdn: { type: 'string' },
      amount: { type: 'string' },
      // 1-32 of [0-9A-Za-z], new for every payment
      trace: { type: 'string', default: 'TS' + randomBytes(12).toString('hex') },
      timeout: { type: 'string', default: '60' }, // seconds
    },
  })
  if (!args.msisdn || !args.amount || (args.type !== 'charge' && args.type !== 'credit')) {
    console.error('usage: main.js --msisdn M --amount A [--type charge|credit] [--trace T] [--timeout S]')
    return 2
  }
  const command: Command = {
    schema_version: 1,
    type: args.type,
    trace_number: args.trace,
    msisdn: args.msisdn,
    amount: args.amount,
  }
  const kafka = new Kafka({ clientId: 'ecash-example', brokers: args.bootstrap.split(','), logLevel: logLevel.WARN })
  const admin = kafka.admin()
  // Kafka's Java default partitioner for keyed records: toPositive(murmur2(key)) % partitions.
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  const groupId = `ecash-example-${command.trace_number}` // kafkajs reads through a group: one of its own
  // read_committed (maxWaitTimeInMs: a result is seen within half a second of its commit)
  const consumer = kafka.consumer({ groupId, readUncommitted: false, maxWaitTimeInMs: 500 })
  try {
    await Promise.all([admin.connect(), producer.connect()])
    // Where the results topic ends now: our result can only come after, so the consumer starts there.
    const ends = await retrying(() => admin.fetchTopicOffsets(args.results))

    const [sent] = await producer.send({
      topic: args.commands,
      acks: -1,
      messages: [{ key: command.msisdn, value: JSON.stringify(command) }],
    })
    console.error(`sent ${command.trace_number} to ${sent.topicName} partition ${sent.partition} offset ${sent.baseOffset}`)

    await consumer.connect()
    await consumer.subscribe({ topic: args.results })
    // Start at those offsets on every (re)join: kafkajs restarts the consumer after a retriable error.
    consumer.on(consumer.events.GROUP_JOIN, () => {
      for (const { partition, offset } of ends) consumer.seek({ topic: args.results, partition, offset })
    })
    return await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        console.error(`no final result for ${command.trace_number} within ${args.timeout} s`)
        resolve(1)
      }, Number(args.timeout) * 1000)
      consumer.on(consumer.events.CRASH, ({ payload }) => payload.restart || reject(payload.error))
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ message }) => {
            const text = message.value?.toString() ?? ''
            let result: Result
            try {
              result = JSON.parse(text) as Result
            } catch {
              return // not a result at all
            }
            if (result.trace_number !== command.trace_number) return // another command's
            console.log(text)
            if (result.outcome !== 'unresolved') {
              clearTimeout(timer)
              resolve(0)
            }
          },
        })
        .catch(reject)
    })
  } finally {
    await consumer.disconnect()
    await admin.deleteGroups([groupId]).catch(() => undefined) // the group was this run's alone
    await Promise.allSettled([producer.disconnect(), admin.disconnect()])
  }
}

// kafkajs's admin does not retry what Kafka calls retriable (a topic just created: "not the leader").
async function retrying<T>(call: () => Promise<T>, attempts = 10): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call()
    } catch (error) {
      if (attempt === attempts || !(error instanceof KafkaJSError && error.retriable)) throw error
      await new Promise((wake) => setTimeout(wake, 100 * attempt))
    }
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error('error:', error instanceof Error ? error.message : error)
    process.exit(2)
  },
)
