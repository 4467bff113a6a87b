"""rankmap_ros: priority-aware multi-DNN manager for heterogeneous boards (RankMap) as a ROS 2 package."""
