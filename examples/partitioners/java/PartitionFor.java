// Where the Kafka Java producer puts a keyed record: BuiltInPartitioner.partitionForKey, the very method
// KafkaProducer calls when no partitioner.class is set (murmur2 over the key bytes, toPositive, modulo).
//
//   java -cp kafka-clients-<version>.jar PartitionFor.java 12 < ../msisdns.txt
//
// Prints "<msisdn> <partition>" per line, the key being the MSISDN as UTF-8 (StringSerializer's default).
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;

public class PartitionFor {
    public static void main(String[] args) throws Exception {
        int partitions = Integer.parseInt(args[0]);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            String msisdn = line.strip();
            if (msisdn.isEmpty()) {
                continue;
            }
            byte[] key = msisdn.getBytes(StandardCharsets.UTF_8);
            System.out.println(msisdn + " " + BuiltInPartitioner.partitionForKey(key, partitions));
        }
    }
}
